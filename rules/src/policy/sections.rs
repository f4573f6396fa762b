//! The declarations of policy sections: which sections a policy file has, their keys,
//! types and checks (`processes/policies/sections/*.yaml`, embedded in the binary).

use super::*;

/// The section declarations shipped with the binary, one place for all of them
/// (a test checks this list against `processes/policies/sections/`).
const BUILTIN_SECTIONS: &[(&str, &str)] = &[
    (
        "dibao.yaml",
        include_str!("../../../processes/policies/sections/dibao.yaml"),
    ),
    (
        "disability_subsidy.yaml",
        include_str!("../../../processes/policies/sections/disability_subsidy.yaml"),
    ),
    (
        "funeral_aid.yaml",
        include_str!("../../../processes/policies/sections/funeral_aid.yaml"),
    ),
    (
        "heating_aid.yaml",
        include_str!("../../../processes/policies/sections/heating_aid.yaml"),
    ),
    (
        "low_income.yaml",
        include_str!("../../../processes/policies/sections/low_income.yaml"),
    ),
    (
        "orphan_allowance.yaml",
        include_str!("../../../processes/policies/sections/orphan_allowance.yaml"),
    ),
    (
        "price_subsidy.yaml",
        include_str!("../../../processes/policies/sections/price_subsidy.yaml"),
    ),
    (
        "reserve_fund.yaml",
        include_str!("../../../processes/policies/sections/reserve_fund.yaml"),
    ),
    (
        "tekun.yaml",
        include_str!("../../../processes/policies/sections/tekun.yaml"),
    ),
    (
        "temporary_aid.yaml",
        include_str!("../../../processes/policies/sections/temporary_aid.yaml"),
    ),
];

/// The file names of the embedded section declarations.
pub fn builtin_section_files() -> Vec<&'static str> {
    BUILTIN_SECTIONS.iter().map(|(f, _)| *f).collect()
}

/// The type of one declared key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyType {
    /// A decimal >= 0.
    Amount,
    /// A decimal > 0.
    Positive,
    /// Any decimal.
    Decimal,
    /// A decimal from 0 to 100.
    Percent,
    Bool,
    Integer,
    /// `YYYY-MM-DD`.
    Date,
    /// Non-empty text.
    Text,
    /// Nested keys.
    Map(BTreeMap<String, KeyDecl>),
}

/// One declared key: its type and display label, and the value a policy file that
/// leaves it out has (`default:`; a key without one must be written).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDecl {
    pub ty: KeyType,
    pub label: String,
    pub default: Option<Value>,
}

/// A check over a section's figures: `require` must hold, else `message` at `path`.
#[derive(Debug, Clone)]
pub struct SectionCheck {
    pub require: Expr,
    pub path: String,
    pub message: String,
}

/// One declared policy section (`processes/policies/sections/<section>.yaml`).
#[derive(Debug, Clone)]
pub struct SectionDecl {
    pub name: String,
    pub label: String,
    /// A policy file without a required section does not load.
    pub required: bool,
    pub keys: BTreeMap<String, KeyDecl>,
    pub checks: Vec<SectionCheck>,
}

/// The declared sections a policy file is read against.
#[derive(Debug, Clone, Default)]
pub struct PolicySections {
    pub(super) sections: BTreeMap<String, SectionDecl>,
}

impl KeyType {
    fn value_type(&self) -> Type {
        match self {
            KeyType::Amount | KeyType::Positive | KeyType::Decimal | KeyType::Percent => {
                Type::Decimal
            }
            KeyType::Bool => Type::Bool,
            KeyType::Integer => Type::Int,
            KeyType::Date => Type::Date,
            KeyType::Text => Type::String,
            KeyType::Map(keys) => keys_type(keys),
        }
    }
}

pub(super) fn keys_type(keys: &BTreeMap<String, KeyDecl>) -> Type {
    Type::Object {
        fields: keys
            .iter()
            .map(|(k, d)| (k.clone(), d.ty.value_type()))
            .collect(),
        open: false,
    }
}

pub(super) const KEY_TYPES: &str =
    "amount, positive, decimal, percent, bool, integer, date, text, map";

impl PolicySections {
    /// The declarations embedded in the binary.
    pub fn builtin() -> &'static PolicySections {
        static BUILTIN: OnceLock<PolicySections> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The embedded files are checked by the crate's tests; a broken one
            // leaves its section undeclared rather than stopping the program.
            let mut sections = PolicySections::default();
            for (file, src) in BUILTIN_SECTIONS {
                if let Ok(decl) = SectionDecl::from_yaml(src, file) {
                    sections.sections.insert(decl.name.clone(), decl);
                }
            }
            sections
        })
    }

    /// Reads declarations from `(file name, text)` pairs, reporting every broken file.
    pub fn from_files<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PolicySections, Vec<PolicyError>> {
        let mut sections = PolicySections::default();
        let mut errors = Vec::new();
        for (file, src) in files {
            match SectionDecl::from_yaml(src, file) {
                Ok(decl) => {
                    if sections.sections.contains_key(&decl.name) {
                        errors.push(PolicyError::Invalid {
                            file: file.to_string(),
                            problems: vec![PolicyProblem {
                                path: "section".into(),
                                line: 1,
                                column: 1,
                                message: format!("section `{}` is declared twice", decl.name),
                            }],
                        });
                    } else {
                        sections.sections.insert(decl.name.clone(), decl);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(sections)
        } else {
            Err(errors)
        }
    }

    /// The built-in declarations, or the ones in `dir` (every `*.yaml` in it) when
    /// the directory exists.
    pub fn load_dir(dir: &Path) -> Result<PolicySections, Vec<PolicyError>> {
        if !dir.is_dir() {
            return Ok(PolicySections::builtin().clone());
        }
        let mut texts = Vec::new();
        let mut errors = Vec::new();
        for path in yaml_files(dir).map_err(|e| vec![e])? {
            let file = format!("sections/{}", display_name(&path));
            match std::fs::read_to_string(&path) {
                Ok(src) => texts.push((file, src)),
                Err(source) => errors.push(PolicyError::Io { file, source }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        PolicySections::from_files(texts.iter().map(|(f, s)| (f.as_str(), s.as_str())))
    }

    /// The declarations for the policy files in `policies_dir`: its `sections/`
    /// directory when it has one, else the built-in ones.
    pub fn for_policies(policies_dir: &Path) -> Result<PolicySections, Vec<PolicyError>> {
        PolicySections::load_dir(&policies_dir.join("sections"))
    }

    pub fn get(&self, name: &str) -> Option<&SectionDecl> {
        self.sections.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// The static type of [`Policy::to_value`] under these declarations.
    pub fn value_type(&self) -> Type {
        let mut fields = BTreeMap::new();
        fields.insert("effective_from".to_string(), Type::Date);
        fields.insert("jurisdiction".to_string(), Type::String);
        for (name, decl) in &self.sections {
            fields.insert(name.clone(), keys_type(&decl.keys));
        }
        Type::Object {
            fields,
            open: false,
        }
    }
}

pub(super) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let entries = std::fs::read_dir(dir).map_err(|source| PolicyError::Io {
        file: dir.display().to_string(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    Ok(paths)
}

impl SectionDecl {
    /// Reads one section declaration; `file` names it in messages.
    pub fn from_yaml(src: &str, file: &str) -> Result<SectionDecl, PolicyError> {
        let root = yaml::parse(src).map_err(|source| PolicyError::Yaml {
            file: file.to_string(),
            source,
        })?;
        let mut r = Reader {
            problems: Vec::new(),
        };
        let top = r.map_with_optional(
            Some(&root),
            "",
            &["section", "keys"],
            &["label", "required", "checks"],
        );
        let name = r.text(top, "section");
        if !name.is_empty() && !is_identifier(&name) {
            r.problem(
                "section",
                top.and_then(|t| t.get("section")),
                format!("must be a name of letters, digits and `_`, found {name:?}"),
            );
        }
        if name == "effective_from" || name == "jurisdiction" {
            r.problem(
                "section",
                top.and_then(|t| t.get("section")),
                format!("`{name}` is a key of every policy file, not a section"),
            );
        }
        let label = match top.and_then(|t| t.get("label")) {
            Some(_) => r.text(top, "label"),
            None => name.clone(),
        };
        let required = match top.and_then(|t| t.get("required")) {
            Some(_) => r.boolean(top, "required", ""),
            None => false,
        };
        let keys = r.key_decls(top.and_then(|t| t.get("keys")), "keys");
        let mut checks = Vec::new();
        if let Some(node) = top.and_then(|t| t.get("checks")) {
            match node.as_seq() {
                Some(items) => {
                    let env: BTreeMap<String, Type> = keys
                        .iter()
                        .map(|(k, d)| (k.clone(), d.ty.value_type()))
                        .collect();
                    for (i, item) in items.iter().enumerate() {
                        let path = format!("checks[{i}]");
                        let map = r.map(Some(item), &path, &["require", "path", "message"]);
                        let require = r.text(map, "require");
                        let at = r.text(map, "path");
                        let message = r.text(map, "message");
                        if map.is_none() || require.is_empty() {
                            continue;
                        }
                        let req_node = map.and_then(|m| m.get("require"));
                        if !at.is_empty() && lookup_decl(&keys, &at).is_none() {
                            r.problem(
                                &join(&path, "path"),
                                map.and_then(|m| m.get("path")),
                                format!("`{at}` is not a declared key"),
                            );
                        }
                        match Expr::compile(&require, &env) {
                            Ok(expr) if *expr.result_type() == Type::Bool => {
                                checks.push(SectionCheck {
                                    require: expr,
                                    path: at,
                                    message,
                                })
                            }
                            Ok(expr) => r.problem(
                                &join(&path, "require"),
                                req_node,
                                format!(
                                    "must be a true/false expression, found {:?}",
                                    expr.result_type()
                                ),
                            ),
                            Err(errors) => {
                                // At the place in the expression: its text starts at
                                // the node's content column.
                                for e in errors {
                                    let before = require.get(..e.offset).unwrap_or("");
                                    r.problems.push(PolicyProblem {
                                        path: join(&path, "require"),
                                        line: req_node.map_or(0, |n| n.line),
                                        column: req_node.map_or(0, |n| {
                                            n.content_column() + before.chars().count()
                                        }),
                                        message: e.message,
                                    });
                                }
                            }
                        }
                    }
                }
                None => r.problem("checks", Some(node), "must be a list"),
            }
        }
        if !r.problems.is_empty() {
            return Err(PolicyError::Invalid {
                file: file.to_string(),
                problems: r.problems,
            });
        }
        Ok(SectionDecl {
            name,
            label,
            required,
            keys,
            checks,
        })
    }
}

pub(super) fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn lookup_decl<'d>(
    keys: &'d BTreeMap<String, KeyDecl>,
    path: &str,
) -> Option<&'d KeyDecl> {
    let mut parts = path.split('.');
    let mut decl = keys.get(parts.next()?)?;
    for part in parts {
        match &decl.ty {
            KeyType::Map(inner) => decl = inner.get(part)?,
            _ => return None,
        }
    }
    Some(decl)
}
