//! Shamir secret sharing over GF(2^8) as sops uses it (HashiCorp Vault's scheme): each share is
//! the secret's bytes evaluated on random polynomials, followed by one byte, the x coordinate.

/// Multiplication in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

/// a^254 = a^-1 for a ≠ 0.
fn inverse(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exp = 254u32;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    result
}

/// Recombines the secret from `threshold` or more shares (each: y bytes then the x byte).
pub fn combine(shares: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let first = shares.first().ok_or("no shares")?;
    if first.len() < 2 {
        return Err("a share is too short".into());
    }
    if shares.iter().any(|s| s.len() != first.len()) {
        return Err("shares have different lengths".into());
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[s.len() - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if *x == 0 || xs[..i].contains(x) {
            return Err("shares have invalid or repeated x coordinates".into());
        }
    }
    let len = first.len() - 1;
    let mut secret = vec![0u8; len];
    for (i, share) in shares.iter().enumerate() {
        // The Lagrange basis polynomial of share i, evaluated at 0.
        let mut basis = 1u8;
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                basis = mul(basis, mul(*xj, inverse(xs[i] ^ xj)));
            }
        }
        for (k, byte) in secret.iter_mut().enumerate() {
            *byte ^= mul(share[k], basis);
        }
    }
    Ok(secret)
}

/// Splits a secret into `parts` shares, any `threshold` of which recombine it: each byte is the
/// constant term of its own random polynomial of degree `threshold - 1`; share i holds the
/// polynomials' values at x = i + 1, then x.
pub fn split(secret: &[u8], parts: usize, threshold: usize) -> Result<Vec<zeroize::Zeroizing<Vec<u8>>>, String> {
    use aes_gcm::aead::OsRng;
    use aes_gcm::aead::rand_core::RngCore;
    if threshold < 1 || threshold > parts {
        return Err(format!("a threshold of {threshold} for {parts} key groups; use 1 to {parts}"));
    }
    if parts > 255 {
        return Err("more than 255 key groups".into());
    }
    // One row of threshold - 1 coefficients per secret byte.
    let mut coefficients = zeroize::Zeroizing::new(vec![0u8; secret.len() * (threshold - 1)]);
    OsRng.fill_bytes(&mut coefficients[..]);
    let xs: Vec<u8> = (1..=parts).map(|x| x as u8).collect();
    Ok(evaluate(secret, &coefficients, threshold - 1, &xs))
}

/// The shares of `secret` at `xs` for the given coefficients (`degree` per byte).
fn evaluate(secret: &[u8], coefficients: &[u8], degree: usize, xs: &[u8]) -> Vec<zeroize::Zeroizing<Vec<u8>>> {
    xs.iter()
        .map(|x| {
            let mut share: Vec<u8> = secret
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    // s + c1·x + c2·x² …
                    let mut y = *s;
                    let mut power = 1u8;
                    for c in &coefficients[i * degree..(i + 1) * degree] {
                        power = mul(power, *x);
                        y ^= mul(*c, power);
                    }
                    y
                })
                .collect();
            share.push(*x);
            zeroize::Zeroizing::new(share)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits with the same coefficients for every byte, to test without a random source.
    fn split(secret: &[u8], coefficients: &[u8], xs: &[u8]) -> Vec<Vec<u8>> {
        let all: Vec<u8> = secret.iter().flat_map(|_| coefficients.iter().copied()).collect();
        evaluate(secret, &all, coefficients.len(), xs).into_iter().map(|s| s.to_vec()).collect()
    }

    #[test]
    fn random_split_recombines_from_any_threshold_subset() {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let shares = super::split(&secret, 3, 2).expect("split");
        assert_eq!(combine(&[shares[0].to_vec(), shares[2].to_vec()]).expect("combine"), secret);
        assert_eq!(combine(&[shares[1].to_vec(), shares[0].to_vec()]).expect("combine"), secret);
        assert!(super::split(&secret, 2, 3).is_err());
    }

    #[test]
    fn any_threshold_subset_recombines() {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let shares = split(&secret, &[0x53, 0xca], &[1, 2, 3]);
        assert_eq!(combine(&shares[..3]).expect("3 of 3"), secret);
        assert_eq!(combine(&[shares[0].clone(), shares[2].clone(), shares[1].clone()]).expect("any order"), secret);
        assert_ne!(combine(&shares[..2]).expect("2 shares combine to something"), secret, "below the threshold");
        assert_eq!(inverse(mul(7, 9)), mul(inverse(7), inverse(9)));
    }
}
