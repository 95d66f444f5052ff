//! Conditions over a measurement's result (`success: result[0] >= 0.95`): the subset of the
//! expression language Argo Rollouts' `successCondition`/`failureCondition` use (expr-lang), so
//! an AnalysisTemplate's conditions mean here what they mean there. No crate speaks that
//! language, so it is parsed here: a condition is parsed once, when the configuration is read
//! (a typo is a config error with its line, not a failed release), and evaluated per measurement.
//!
//! Supported: numbers, strings, `true`/`false`/`nil`, lists `[…]`; `result` (and any other name
//! the caller binds); `a[i]`, `a.key`; `!`/`not`, unary `-`; `* / %`, `+ -`; `== != < <= > >=`,
//! `in`; `&&`/`and`, `||`/`or`; `c ? a : b`; functions `len`, `abs`, `min`, `max`, `sum`,
//! `isNaN`, `isInf`, `asInt`, `asFloat`, `default`, and `all`/`any`/`none`/`filter`/`map` with a
//! `{…}` predicate in which `#` is the element.

use std::collections::BTreeMap;
use std::fmt;

/// A value a condition sees or computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(items) => Value::List(items.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(map) => {
                Value::Map(map.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect())
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "a boolean",
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Num(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Name(String),
    /// `#` inside a predicate.
    Element,
    List(Vec<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
    /// `||` (true) or `&&` (false): evaluated lazily, so `len(result) == 0 || result[0] > 1`
    /// never indexes an empty list.
    Logic(bool, Box<Node>, Box<Node>),
    Index(Box<Node>, Box<Node>),
    Member(Box<Node>, String),
    Call(String, Vec<Node>),
    Predicate(Box<Node>),
    Ternary(Box<Node>, Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// A parsed condition, with its text for messages and records.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub text: String,
    node: Node,
}

impl serde::Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Why a condition could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
}

fn err<T>(message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError { message: message.into() })
}

const FUNCTIONS: &[&str] = &[
    "len", "abs", "min", "max", "sum", "isNaN", "isInf", "asInt", "asFloat", "default", "all", "any", "none", "filter",
    "map",
];

impl Condition {
    pub fn parse(text: &str) -> Result<Condition, ExprError> {
        let tokens = lex(text)?;
        let mut parser = Parser { tokens, pos: 0 };
        let node = parser.ternary()?;
        if let Some((token, at)) = parser.tokens.get(parser.pos) {
            return err(format!("unexpected `{token}` at column {}", at + 1));
        }
        Ok(Condition { text: text.trim().to_string(), node })
    }

    /// Evaluates to a boolean with `names` bound (`result`, template arguments).
    pub fn holds(&self, names: &BTreeMap<String, Value>) -> Result<bool, ExprError> {
        match eval(&self.node, names, None)? {
            Value::Bool(b) => Ok(b),
            other => err(format!("`{}` gives {} ({other}), not true or false", self.text, other.kind())),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Str(String),
    Ident(String),
    Sym(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Num(n) => write!(f, "{n}"),
            Token::Str(s) => write!(f, "{s:?}"),
            Token::Ident(s) => f.write_str(s),
            Token::Sym(s) => f.write_str(s),
        }
    }
}

const SYMBOLS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "[", "]", "{", "}", ",", ".",
    "?", ":", "#",
];

fn lex(text: &str) -> Result<Vec<(Token, usize)>, ExprError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'e' || bytes[i] == b'_')
            {
                // `1.` followed by a name is a member access on a number; not worth supporting.
                if bytes[i] == b'e' && !bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit() || *b == b'-' || *b == b'+')
                {
                    break;
                }
                if bytes[i] == b'e' {
                    i += 1;
                }
                i += 1;
            }
            let literal: String = text[start..i].chars().filter(|c| *c != '_').collect();
            let n = literal
                .parse::<f64>()
                .map_err(|_| ExprError { message: format!("`{literal}` at column {} is not a number", start + 1) })?;
            out.push((Token::Num(n), start));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$') {
                i += 1;
            }
            out.push((Token::Ident(text[start..i].to_string()), start));
        } else if c == b'"' || c == b'\'' || c == b'`' {
            let start = i;
            i += 1;
            let mut s = String::new();
            loop {
                let Some(ch) = text[i..].chars().next() else {
                    return err(format!("the string opened at column {} is not closed", start + 1));
                };
                i += ch.len_utf8();
                if ch as u32 == u32::from(c) {
                    break;
                }
                if ch == '\\' && c != b'`' {
                    let Some(next) = text[i..].chars().next() else {
                        return err(format!("the string opened at column {} is not closed", start + 1));
                    };
                    i += next.len_utf8();
                    s.push(match next {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(ch);
                }
            }
            out.push((Token::Str(s), start));
        } else if let Some(sym) = SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            out.push((Token::Sym(sym), i));
            i += sym.len();
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            return err(format!("unexpected `{ch}` at column {}", i + 1));
        }
    }
    if out.is_empty() {
        return err("the condition is empty");
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(s)) if s == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), ExprError> {
        if self.eat_sym(sym) {
            return Ok(());
        }
        match self.tokens.get(self.pos) {
            Some((t, at)) => err(format!("expected `{sym}` at column {}, found `{t}`", at + 1)),
            None => err(format!("expected `{sym}`, found the end of the condition")),
        }
    }

    fn ternary(&mut self) -> Result<Node, ExprError> {
        let cond = self.or()?;
        if self.eat_sym("?") {
            let yes = self.ternary()?;
            self.expect(":")?;
            let no = self.ternary()?;
            return Ok(Node::Ternary(Box::new(cond), Box::new(yes), Box::new(no)));
        }
        Ok(cond)
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and()?;
        while self.eat_sym("||") || self.eat_word("or") {
            left = Node::Logic(true, Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut left = self.comparison()?;
        while self.eat_sym("&&") || self.eat_word("and") {
            left = Node::Logic(false, Box::new(left), Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Node, ExprError> {
        let mut left = self.additive()?;
        loop {
            let op = match self.peek() {
                Some(Token::Sym("==")) => Op::Eq,
                Some(Token::Sym("!=")) => Op::Ne,
                Some(Token::Sym("<")) => Op::Lt,
                Some(Token::Sym("<=")) => Op::Le,
                Some(Token::Sym(">")) => Op::Gt,
                Some(Token::Sym(">=")) => Op::Ge,
                Some(Token::Ident(w)) if w == "in" => Op::In,
                _ => return Ok(left),
            };
            self.pos += 1;
            left = Node::Binary(op, Box::new(left), Box::new(self.additive()?));
        }
    }

    fn additive(&mut self) -> Result<Node, ExprError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat_sym("+") {
                Op::Add
            } else if self.eat_sym("-") {
                Op::Sub
            } else {
                return Ok(left);
            };
            left = Node::Binary(op, Box::new(left), Box::new(self.multiplicative()?));
        }
    }

    fn multiplicative(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_sym("*") {
                Op::Mul
            } else if self.eat_sym("/") {
                Op::Div
            } else if self.eat_sym("%") {
                Op::Mod
            } else {
                return Ok(left);
            };
            left = Node::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.eat_sym("!") || self.eat_word("not") {
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        if self.eat_sym("-") {
            return Ok(Node::Neg(Box::new(self.unary()?)));
        }
        if self.eat_sym("+") {
            return self.unary();
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Node, ExprError> {
        let mut node = self.primary()?;
        loop {
            if self.eat_sym("[") {
                let index = self.ternary()?;
                self.expect("]")?;
                node = Node::Index(Box::new(node), Box::new(index));
            } else if self.eat_sym(".") {
                match self.tokens.get(self.pos).cloned() {
                    Some((Token::Ident(name), _)) => {
                        self.pos += 1;
                        node = Node::Member(Box::new(node), name);
                    }
                    Some((t, at)) => {
                        return err(format!("expected a field name after `.` at column {}, found `{t}`", at + 1));
                    }
                    None => return err("expected a field name after `.`"),
                }
            } else {
                return Ok(node);
            }
        }
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let Some((token, at)) = self.tokens.get(self.pos).cloned() else {
            return err("the condition ends too early");
        };
        self.pos += 1;
        match token {
            Token::Num(n) => Ok(Node::Lit(Value::Num(n))),
            Token::Str(s) => Ok(Node::Lit(Value::Str(s))),
            Token::Ident(word) => match word.as_str() {
                "true" => Ok(Node::Lit(Value::Bool(true))),
                "false" => Ok(Node::Lit(Value::Bool(false))),
                "nil" => Ok(Node::Lit(Value::Nil)),
                _ if self.eat_sym("(") => {
                    if !FUNCTIONS.contains(&word.as_str()) {
                        return err(format!(
                            "unknown function `{word}` at column {}{} (known: {})",
                            at + 1,
                            crate::suggest::suggest(&word, FUNCTIONS.iter().copied()),
                            FUNCTIONS.join(", ")
                        ));
                    }
                    let mut args = Vec::new();
                    if !self.eat_sym(")") {
                        loop {
                            if self.eat_sym("{") {
                                let body = self.ternary()?;
                                self.expect("}")?;
                                args.push(Node::Predicate(Box::new(body)));
                            } else {
                                args.push(self.ternary()?);
                            }
                            if self.eat_sym(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    // expr also takes a bare predicate: `all(result, # < 1000)`.
                    if ["all", "any", "none", "filter", "map"].contains(&word.as_str())
                        && let Some(last) = args.get_mut(1)
                        && !matches!(last, Node::Predicate(_))
                    {
                        let body = std::mem::replace(last, Node::Lit(Value::Nil));
                        *last = Node::Predicate(Box::new(body));
                    }
                    Ok(Node::Call(word, args))
                }
                _ => Ok(Node::Name(word)),
            },
            Token::Sym("#") => Ok(Node::Element),
            Token::Sym("(") => {
                let inner = self.ternary()?;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Sym("[") => {
                let mut items = Vec::new();
                if !self.eat_sym("]") {
                    loop {
                        items.push(self.ternary()?);
                        if self.eat_sym("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ok(Node::List(items))
            }
            other => err(format!("unexpected `{other}` at column {}", at + 1)),
        }
    }
}

fn num(v: &Value, what: &str) -> Result<f64, ExprError> {
    match v {
        Value::Num(n) => Ok(*n),
        other => err(format!("{what} needs a number, found {} ({other})", other.kind())),
    }
}

fn truthy(v: &Value, what: &str) -> Result<bool, ExprError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => err(format!("{what} needs true or false, found {} ({other})", other.kind())),
    }
}

fn list<'v>(v: &'v Value, what: &str) -> Result<&'v [Value], ExprError> {
    match v {
        Value::List(items) => Ok(items),
        other => err(format!("{what} needs a list, found {} ({other})", other.kind())),
    }
}

fn eval(node: &Node, names: &BTreeMap<String, Value>, element: Option<&Value>) -> Result<Value, ExprError> {
    Ok(match node {
        Node::Lit(v) => v.clone(),
        Node::Name(name) => match names.get(name) {
            Some(v) => v.clone(),
            None => {
                return err(format!(
                    "unknown name `{name}`{}",
                    crate::suggest::suggest(name, names.keys().map(String::as_str))
                ));
            }
        },
        Node::Element => match element {
            Some(v) => v.clone(),
            None => return err("`#` is only meaningful inside a `{…}` predicate"),
        },
        Node::List(items) => Value::List(items.iter().map(|i| eval(i, names, element)).collect::<Result<_, _>>()?),
        Node::Not(inner) => Value::Bool(!truthy(&eval(inner, names, element)?, "`!`")?),
        Node::Neg(inner) => Value::Num(-num(&eval(inner, names, element)?, "`-`")?),
        Node::Ternary(c, yes, no) => {
            if truthy(&eval(c, names, element)?, "`? :`")? {
                eval(yes, names, element)?
            } else {
                eval(no, names, element)?
            }
        }
        Node::Binary(op, l, r) => binary(*op, eval(l, names, element)?, eval(r, names, element)?)?,
        Node::Logic(or, l, r) => {
            let what = if *or { "`||`" } else { "`&&`" };
            let left = truthy(&eval(l, names, element)?, what)?;
            Value::Bool(if *or == left { left } else { truthy(&eval(r, names, element)?, what)? })
        }
        Node::Index(target, index) => {
            let target = eval(target, names, element)?;
            let index = eval(index, names, element)?;
            match (&target, &index) {
                (Value::List(items), Value::Num(n)) => {
                    let len = items.len() as f64;
                    let i = if *n < 0.0 { len + n } else { *n };
                    if i.fract() != 0.0 || i < 0.0 || i >= len {
                        return err(format!("index {n} is out of range for a list of {}", items.len()));
                    }
                    items[i as usize].clone()
                }
                (Value::Map(map), Value::Str(key)) => map.get(key).cloned().unwrap_or(Value::Nil),
                _ => return err(format!("cannot index {} with {}", target.kind(), index.kind())),
            }
        }
        Node::Member(target, key) => match eval(target, names, element)? {
            Value::Map(map) => map.get(key).cloned().unwrap_or(Value::Nil),
            other => return err(format!("`.{key}` needs a map, found {} ({other})", other.kind())),
        },
        Node::Call(name, args) => call(name, args, names, element)?,
        Node::Predicate(_) => return err("a `{…}` predicate is only an argument of all, any, none, filter or map"),
    })
}

fn binary(op: Op, a: Value, b: Value) -> Result<Value, ExprError> {
    Ok(match op {
        Op::Eq => Value::Bool(a == b),
        Op::Ne => Value::Bool(a != b),
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let ordering = match (&a, &b) {
                (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
                (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
                _ => return err(format!("cannot compare {} ({a}) with {} ({b})", a.kind(), b.kind())),
            };
            let Some(ordering) = ordering else {
                // NaN compares false with everything, as in Go.
                return Ok(Value::Bool(false));
            };
            Value::Bool(match op {
                Op::Lt => ordering.is_lt(),
                Op::Le => ordering.is_le(),
                Op::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
        Op::In => match &b {
            Value::List(items) => Value::Bool(items.contains(&a)),
            Value::Map(map) => Value::Bool(matches!(&a, Value::Str(k) if map.contains_key(k))),
            Value::Str(s) => Value::Bool(matches!(&a, Value::Str(sub) if s.contains(sub.as_str()))),
            other => return err(format!("`in` needs a list, a map or a string, found {}", other.kind())),
        },
        Op::Add => match (&a, &b) {
            (Value::Str(x), Value::Str(y)) => Value::Str(format!("{x}{y}")),
            _ => Value::Num(num(&a, "`+`")? + num(&b, "`+`")?),
        },
        Op::Sub => Value::Num(num(&a, "`-`")? - num(&b, "`-`")?),
        Op::Mul => Value::Num(num(&a, "`*`")? * num(&b, "`*`")?),
        Op::Div => Value::Num(num(&a, "`/`")? / num(&b, "`/`")?),
        Op::Mod => Value::Num(num(&a, "`%`")? % num(&b, "`%`")?),
    })
}

fn call(
    name: &str,
    args: &[Node],
    names: &BTreeMap<String, Value>,
    element: Option<&Value>,
) -> Result<Value, ExprError> {
    let arity = |n: usize| -> Result<(), ExprError> {
        if args.len() == n { Ok(()) } else { err(format!("`{name}` takes {n} argument(s), given {}", args.len())) }
    };
    let value = |i: usize| eval(&args[i], names, element);
    Ok(match name {
        "all" | "any" | "none" | "filter" | "map" => {
            arity(2)?;
            let items = value(0)?;
            let items = list(&items, &format!("`{name}`"))?;
            let Node::Predicate(body) = &args[1] else {
                return err(format!(
                    "`{name}` needs a predicate as its second argument, e.g. `{name}(result, {{# > 0.9}})`"
                ));
            };
            let mut kept = Vec::new();
            let mut count = 0usize;
            for item in items {
                let out = eval(body, names, Some(item))?;
                if name == "map" {
                    kept.push(out);
                } else if truthy(&out, &format!("`{name}`'s predicate"))? {
                    count += 1;
                    if name == "filter" {
                        kept.push(item.clone());
                    }
                }
            }
            match name {
                "all" => Value::Bool(count == items.len()),
                "any" => Value::Bool(count > 0),
                "none" => Value::Bool(count == 0),
                _ => Value::List(kept),
            }
        }
        "len" => {
            arity(1)?;
            match value(0)? {
                Value::List(items) => Value::Num(items.len() as f64),
                Value::Map(map) => Value::Num(map.len() as f64),
                Value::Str(s) => Value::Num(s.chars().count() as f64),
                other => return err(format!("`len` needs a list, a map or a string, found {}", other.kind())),
            }
        }
        "abs" => {
            arity(1)?;
            Value::Num(num(&value(0)?, "`abs`")?.abs())
        }
        "isNaN" => {
            arity(1)?;
            Value::Bool(num(&value(0)?, "`isNaN`")?.is_nan())
        }
        "isInf" => {
            arity(1)?;
            Value::Bool(num(&value(0)?, "`isInf`")?.is_infinite())
        }
        "asInt" | "asFloat" => {
            arity(1)?;
            let n = match value(0)? {
                Value::Num(n) => n,
                Value::Str(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| ExprError { message: format!("`{name}`: {s:?} is not a number") })?,
                other => return err(format!("`{name}` needs a number or a string, found {}", other.kind())),
            };
            Value::Num(if name == "asInt" { n.trunc() } else { n })
        }
        "default" => {
            arity(2)?;
            match value(0)? {
                Value::Nil => value(1)?,
                v => v,
            }
        }
        "min" | "max" | "sum" => {
            let mut numbers = Vec::new();
            for i in 0..args.len() {
                match value(i)? {
                    Value::List(items) => {
                        for item in &items {
                            numbers.push(num(item, &format!("`{name}`"))?);
                        }
                    }
                    v => numbers.push(num(&v, &format!("`{name}`"))?),
                }
            }
            if name == "sum" {
                Value::Num(numbers.iter().sum())
            } else if numbers.is_empty() {
                return err(format!("`{name}` of nothing"));
            } else if name == "min" {
                Value::Num(numbers.iter().copied().fold(f64::INFINITY, f64::min))
            } else {
                Value::Num(numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max))
            }
        }
        other => return err(format!("unknown function `{other}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(text: &str, result: Value) -> Result<bool, ExprError> {
        let names = BTreeMap::from([("result".to_string(), result)]);
        Condition::parse(text)?.holds(&names)
    }

    fn vector(values: &[f64]) -> Value {
        Value::List(values.iter().map(|v| Value::Num(*v)).collect())
    }

    #[test]
    fn argo_style_conditions() {
        assert_eq!(holds("result[0] >= 0.95", vector(&[0.97])), Ok(true));
        assert_eq!(holds("result[0] >= 0.95", vector(&[0.5])), Ok(false));
        assert_eq!(holds("result == 1", Value::Num(1.0)), Ok(true));
        assert_eq!(holds("len(result) == 0 || result[0] < 0.1", vector(&[])), Ok(true));
        assert_eq!(holds("all(result, {# > 0.9})", vector(&[0.95, 0.99])), Ok(true));
        assert_eq!(holds("all(result, # < 1000)", vector(&[10.0, 999.0])), Ok(true));
        assert_eq!(holds("len(filter(result, # > 1)) == 1", vector(&[0.5, 2.0])), Ok(true));
        assert_eq!(holds("any(result, {# > 0.9}) and not isNaN(result[0])", vector(&[0.1, 0.95])), Ok(true));
        assert_eq!(holds("isNaN(result)", Value::Num(f64::NAN)), Ok(true));
        assert_eq!(holds("default(result, 0) < 5", Value::Nil), Ok(true));
        assert_eq!(
            holds(
                "result.status == 'ok' && result.count > 2",
                Value::from_json(&serde_json::json!({"status": "ok", "count": 3}))
            ),
            Ok(true)
        );
        assert_eq!(holds("asInt(result) == 200", Value::Str("200".into())), Ok(true));
        assert_eq!(holds("result[0] > 1 ? false : true", vector(&[0.5])), Ok(true));
        assert_eq!(holds("-result[-1] + 2 * 3 == 5", vector(&[0.0, 1.0])), Ok(true));
        assert_eq!(holds("'a' in result", Value::List(vec![Value::Str("a".into())])), Ok(true));
    }

    #[test]
    fn bad_conditions_say_where() {
        let e = Condition::parse("result[0] >= ").expect_err("incomplete");
        assert!(e.message.contains("ends too early"), "{e}");
        let e = Condition::parse("result[0] => 1").expect_err("bad operator");
        assert!(e.message.contains("unexpected `=` at column 11"), "{e}");
        let e = Condition::parse("lenn(result) > 1").expect_err("unknown function");
        assert!(e.message.contains("did you mean `len`"), "{e}");
        let e = Condition::parse("result[0] > 'x").expect_err("open string");
        assert!(e.message.contains("not closed"), "{e}");
    }

    #[test]
    fn evaluation_errors_are_errors_not_false() {
        let e = holds("result[3] > 1", vector(&[1.0])).expect_err("out of range");
        assert!(e.message.contains("out of range"), "{e}");
        let e = holds("result", vector(&[1.0])).expect_err("not a boolean");
        assert!(e.message.contains("not true or false"), "{e}");
        let e = holds("reslt > 1", Value::Num(1.0)).expect_err("unknown name");
        assert!(e.message.contains("did you mean `result`"), "{e}");
    }
}
