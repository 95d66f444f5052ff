//! `cairn secrets encrypt|rotate|updatekeys|edit|decrypt`.

use std::io::Write;

use super::{SecretsCommand, Status, report_io};
use crate::error::Result;
use crate::report;
use crate::secrets::{Identities, files};

pub fn run(command: &SecretsCommand, out: &mut dyn Write) -> Result<Status> {
    match command {
        SecretsCommand::Encrypt { file } => {
            let recipients = files::encrypt_file(file)?;
            report_io(report::write_secret_done(out, file, &format!("encrypted for {recipients}")))?;
        }
        SecretsCommand::Rotate { file } => {
            let recipients = files::rotate_file(file, &Identities::from_environment()?)?;
            report_io(report::write_secret_done(out, file, &format!("new data key, encrypted for {recipients}")))?;
        }
        SecretsCommand::Updatekeys { file } => {
            let recipients = files::updatekeys_file(file, &Identities::from_environment()?)?;
            report_io(report::write_secret_done(out, file, &format!("data key wrapped for {recipients}")))?;
        }
        SecretsCommand::Edit { file } => {
            let said = match files::edit_file(file, &Identities::from_environment()?)? {
                files::Edited::Changed => "re-encrypted (unchanged values keep their ciphertext)",
                files::Edited::Unchanged => "no changes",
            };
            report_io(report::write_secret_done(out, file, said))?;
        }
        SecretsCommand::Decrypt { files: paths, format } => {
            let identities = Identities::from_environment()?;
            // Printing is what the user asked for; the plaintext stays wrapped until the reporter.
            let mut decrypted = Vec::new();
            for file in paths {
                decrypted.push((file.display().to_string(), files::decrypt_file(file, &identities)?));
            }
            report_io(report::write_decrypted(out, decrypted, *format))?;
        }
    }
    Ok(Status::Success)
}
