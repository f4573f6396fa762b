//! Policy parameters: the local figures of assess.md (standards, rates, caps) read
//! from YAML as exact decimals, and the choice of the policy in force for a unit
//! and a date.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::value::{Type, Value};
use crate::yaml::{self, Node, NodeValue};

/// One policy parameter file.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// First day these figures apply.
    pub effective_from: NaiveDate,
    /// The unit path the figures apply to, e.g. `双鸭山市` or `双鸭山市/尖山区`.
    pub jurisdiction: String,
    pub dibao: DibaoPolicy,
    pub low_income: LowIncomePolicy,
    pub tekun: TekunPolicy,
    pub temporary_aid: TemporaryAidPolicy,
    /// Optional: the yearly heating aid paid over the recipients (`heating_aid`).
    pub heating_aid: Option<HeatingAidPolicy>,
    /// Optional: the price-linked subsidy paid over the recipients (`price_subsidy`).
    pub price_subsidy: Option<PriceSubsidyPolicy>,
    /// Optional: 残疾人两项补贴 amounts (`disability_subsidy`).
    pub disability_subsidy: Option<DisabilitySubsidyPolicy>,
    /// Optional: 孤儿基本生活保障 amounts by placement (`orphan_allowance`).
    pub orphan_allowance: Option<OrphanAllowancePolicy>,
    /// Optional: 殡葬救助 caps and lump sum (`funeral_aid`).
    pub funeral_aid: Option<FuneralAidPolicy>,
    /// Optional: the township reserve fund's ceiling (`reserve_fund`).
    pub reserve_fund: Option<ReserveFundPolicy>,
    /// The file it was read from, for messages (`policy.yaml`).
    pub source: String,
}

/// 取暖救助: one payment per household each heating season.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatingAidPolicy {
    pub per_household: Decimal,
    /// Low-income households are paid too.
    pub includes_low_income: bool,
}

/// 价格临时补贴: paid when a month's price rise reaches the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceSubsidyPolicy {
    /// A monthly CPI rise (percent) at or above this triggers the subsidy.
    pub threshold_percent: Decimal,
    pub per_person: Decimal,
}

/// 残疾人两项补贴: living subsidy and care subsidy, per person per month.
#[derive(Debug, Clone, PartialEq)]
pub struct DisabilitySubsidyPolicy {
    pub living_amount: Decimal,
    pub care_amount_grade1: Decimal,
    pub care_amount_grade2: Decimal,
    pub care_includes_grade3_intellectual_mental: bool,
}

/// 孤儿、事实无人抚养儿童基本生活保障, per child per month by placement.
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanAllowancePolicy {
    pub institution: Decimal,
    pub scattered: Decimal,
}

/// 殡葬救助: a cap per service, or a lump sum for a burial custom.
#[derive(Debug, Clone, PartialEq)]
pub struct FuneralAidPolicy {
    pub caps: FuneralCaps,
    pub lump_sum: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FuneralCaps {
    pub transport: Decimal,
    pub storage: Decimal,
    pub cremation: Decimal,
    pub ash_storage: Decimal,
}

/// 乡镇临时救助备用金: the most a township's reserve is topped up to.
#[derive(Debug, Clone, PartialEq)]
pub struct ReserveFundPolicy {
    pub ceiling: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DibaoPolicy {
    pub standard: AreaStandard,
    pub supplement_rate: Decimal,
    pub savings_months: Decimal,
    pub employment_cost: EmploymentCost,
    pub single_person_subsidy: Decimal,
    pub severe_includes_grade3_intellectual_mental: bool,
}

/// 低保标准 per area, yuan / person / month.
#[derive(Debug, Clone, PartialEq)]
pub struct AreaStandard {
    pub urban: Decimal,
    pub rural: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmploymentCost {
    pub rate: Decimal,
    pub cap: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LowIncomePolicy {
    pub ratio: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TekunPolicy {
    pub basic_ratio: Decimal,
    pub minimum_wage: Decimal,
    pub care_divisor: CareDivisor,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CareDivisor {
    pub full: Decimal,
    pub semi: Decimal,
    /// `self` in the file (全自理).
    pub self_care: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemporaryAidPolicy {
    pub township_ceiling_months: Decimal,
    pub county_ceiling_months: Decimal,
    pub advance_cap: Decimal,
    pub disposable_income_per_capita: Decimal,
}

/// One problem in a policy file, at a YAML key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    /// Dotted key path, e.g. `dibao.standard.urban`.
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why policy parameters could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{}", .source)]
    Yaml {
        file: String,
        #[source]
        source: yaml::YamlError,
    },
    #[error("{}", ProblemList { file, problems })]
    Invalid {
        file: String,
        problems: Vec<PolicyProblem>,
    },
}

impl PolicyError {
    /// One line per problem: `policy.yaml: dibao.standard.urban: must be >= 0`.
    pub fn lines(&self) -> Vec<String> {
        match self {
            PolicyError::Invalid { file, problems } => problems
                .iter()
                .map(|p| format!("{file}: {}: {}", p.path, p.message))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

struct ProblemList<'a> {
    file: &'a str,
    problems: &'a [PolicyProblem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}: {}", self.file, p.path, p.message)?;
        }
        Ok(())
    }
}

/// Collects every problem while reading the tree.
struct Reader {
    problems: Vec<PolicyProblem>,
}

impl Reader {
    fn problem(&mut self, path: &str, node: Option<&Node>, message: impl Into<String>) {
        self.problems.push(PolicyProblem {
            path: path.to_string(),
            line: node.map_or(0, |n| n.line),
            column: node.map_or(0, |n| n.column),
            message: message.into(),
        });
    }

    /// The children of a mapping that must have exactly `keys`.
    fn map<'n>(&mut self, node: Option<&'n Node>, path: &str, keys: &[&str]) -> Option<&'n Node> {
        self.map_with_optional(node, path, keys, &[])
    }

    /// The children of a mapping that must have `keys` and may have `optional` ones.
    fn map_with_optional<'n>(
        &mut self,
        node: Option<&'n Node>,
        path: &str,
        keys: &[&str],
        optional: &[&str],
    ) -> Option<&'n Node> {
        let node = node?;
        let Some(entries) = node.as_map() else {
            self.problem(path, Some(node), "must be a mapping");
            return None;
        };
        for (key, _) in entries {
            if !keys.contains(&key.name.as_str()) && !optional.contains(&key.name.as_str()) {
                self.problems.push(PolicyProblem {
                    path: join(path, &key.name),
                    line: key.line,
                    column: key.column,
                    message: "unknown key".into(),
                });
            }
        }
        for key in keys {
            if node.get(key).is_none() {
                self.problem(&join(path, key), Some(node), "missing key");
            }
        }
        Some(node)
    }

    fn child<'n>(&mut self, parent: Option<&'n Node>, key: &str) -> Option<&'n Node> {
        parent?.get(key)
    }

    fn scalar<'n>(&mut self, node: Option<&'n Node>, path: &str) -> Option<&'n str> {
        let node = node?;
        match &node.value {
            NodeValue::Scalar(s) => Some(s),
            _ => {
                self.problem(path, Some(node), "must be a single value");
                None
            }
        }
    }

    /// An exact, non-negative decimal (quoted or not).
    fn amount(&mut self, parent: Option<&Node>, key: &str, path: &str) -> Decimal {
        let path = join(path, key);
        let node = self.child(parent, key);
        let Some(text) = self.scalar(node, &path) else {
            return Decimal::ZERO;
        };
        match Decimal::from_str(text.trim()) {
            Ok(d) if d < Decimal::ZERO => {
                self.problem(&path, node, "must be >= 0");
                Decimal::ZERO
            }
            Ok(d) => d,
            Err(_) => {
                self.problem(
                    &path,
                    node,
                    format!("must be a decimal number, found {text:?}"),
                );
                Decimal::ZERO
            }
        }
    }

    fn positive(&mut self, parent: Option<&Node>, key: &str, path: &str) -> Decimal {
        let value = self.amount(parent, key, path);
        let node = self.child(parent, key);
        // Only a value written as zero: a negative one was already reported as such.
        let written_zero = node
            .and_then(Node::as_scalar)
            .and_then(|s| Decimal::from_str(s.trim()).ok())
            .is_some_and(|d| d.is_zero());
        if written_zero {
            self.problem(&join(path, key), node, "must be > 0");
        }
        value
    }

    fn boolean(&mut self, parent: Option<&Node>, key: &str, path: &str) -> bool {
        let path = join(path, key);
        let node = self.child(parent, key);
        match self.scalar(node, &path) {
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.problem(
                    &path,
                    node,
                    format!("must be true or false, found {other:?}"),
                );
                false
            }
            None => false,
        }
    }

    fn date(&mut self, parent: Option<&Node>, key: &str) -> NaiveDate {
        let node = self.child(parent, key);
        match self.scalar(node, key) {
            Some(text) => NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").unwrap_or_else(|_| {
                self.problem(
                    key,
                    node,
                    format!("must be a date YYYY-MM-DD, found {text:?}"),
                );
                NaiveDate::MIN
            }),
            None => NaiveDate::MIN,
        }
    }

    fn text(&mut self, parent: Option<&Node>, key: &str) -> String {
        let node = self.child(parent, key);
        match self.scalar(node, key) {
            Some(text) if !text.trim().is_empty() => text.trim().trim_matches('/').to_string(),
            Some(_) => {
                self.problem(key, node, "must not be empty");
                String::new()
            }
            None => String::new(),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Policy {
    /// Reads a policy from YAML text; `file` names it in messages.
    pub fn from_yaml(src: &str, file: &str) -> Result<Policy, PolicyError> {
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
            &[
                "effective_from",
                "jurisdiction",
                "dibao",
                "low_income",
                "tekun",
                "temporary_aid",
            ],
            &[
                "heating_aid",
                "price_subsidy",
                "disability_subsidy",
                "orphan_allowance",
                "funeral_aid",
                "reserve_fund",
            ],
        );
        let effective_from = r.date(top, "effective_from");
        let jurisdiction = r.text(top, "jurisdiction");

        let dibao = r.map(
            top.and_then(|t| t.get("dibao")),
            "dibao",
            &[
                "standard",
                "supplement_rate",
                "savings_months",
                "employment_cost",
                "single_person_subsidy",
                "severe_includes_grade3_intellectual_mental",
            ],
        );
        let standard = r.map(
            dibao.and_then(|d| d.get("standard")),
            "dibao.standard",
            &["urban", "rural"],
        );
        let employment = r.map(
            dibao.and_then(|d| d.get("employment_cost")),
            "dibao.employment_cost",
            &["rate", "cap"],
        );
        let dibao = DibaoPolicy {
            standard: AreaStandard {
                urban: r.positive(standard, "urban", "dibao.standard"),
                rural: r.positive(standard, "rural", "dibao.standard"),
            },
            supplement_rate: r.amount(dibao, "supplement_rate", "dibao"),
            savings_months: r.amount(dibao, "savings_months", "dibao"),
            employment_cost: EmploymentCost {
                rate: r.amount(employment, "rate", "dibao.employment_cost"),
                cap: r.amount(employment, "cap", "dibao.employment_cost"),
            },
            single_person_subsidy: r.amount(dibao, "single_person_subsidy", "dibao"),
            severe_includes_grade3_intellectual_mental: r.boolean(
                dibao,
                "severe_includes_grade3_intellectual_mental",
                "dibao",
            ),
        };

        let low_income = r.map(
            top.and_then(|t| t.get("low_income")),
            "low_income",
            &["ratio"],
        );
        let low_income = LowIncomePolicy {
            ratio: r.positive(low_income, "ratio", "low_income"),
        };

        let tekun = r.map(
            top.and_then(|t| t.get("tekun")),
            "tekun",
            &["basic_ratio", "minimum_wage", "care_divisor"],
        );
        let divisor = r.map(
            tekun.and_then(|t| t.get("care_divisor")),
            "tekun.care_divisor",
            &["full", "semi", "self"],
        );
        let tekun = TekunPolicy {
            basic_ratio: r.amount(tekun, "basic_ratio", "tekun"),
            minimum_wage: r.amount(tekun, "minimum_wage", "tekun"),
            care_divisor: CareDivisor {
                full: r.positive(divisor, "full", "tekun.care_divisor"),
                semi: r.positive(divisor, "semi", "tekun.care_divisor"),
                self_care: r.positive(divisor, "self", "tekun.care_divisor"),
            },
        };

        let aid = r.map(
            top.and_then(|t| t.get("temporary_aid")),
            "temporary_aid",
            &[
                "township_ceiling_months",
                "county_ceiling_months",
                "advance_cap",
                "disposable_income_per_capita",
            ],
        );
        let temporary_aid = TemporaryAidPolicy {
            township_ceiling_months: r.amount(aid, "township_ceiling_months", "temporary_aid"),
            county_ceiling_months: r.amount(aid, "county_ceiling_months", "temporary_aid"),
            advance_cap: r.amount(aid, "advance_cap", "temporary_aid"),
            disposable_income_per_capita: r.amount(
                aid,
                "disposable_income_per_capita",
                "temporary_aid",
            ),
        };
        if temporary_aid.county_ceiling_months < temporary_aid.township_ceiling_months {
            r.problem(
                "temporary_aid.county_ceiling_months",
                aid.and_then(|a| a.get("county_ceiling_months")),
                "must be >= township_ceiling_months",
            );
        }

        let heating_aid = top.and_then(|t| t.get("heating_aid")).map(|node| {
            let section = r.map(
                Some(node),
                "heating_aid",
                &["per_household", "includes_low_income"],
            );
            HeatingAidPolicy {
                per_household: r.amount(section, "per_household", "heating_aid"),
                includes_low_income: r.boolean(section, "includes_low_income", "heating_aid"),
            }
        });
        let price_subsidy = top.and_then(|t| t.get("price_subsidy")).map(|node| {
            let section = r.map(
                Some(node),
                "price_subsidy",
                &["threshold_percent", "per_person"],
            );
            PriceSubsidyPolicy {
                threshold_percent: r.amount(section, "threshold_percent", "price_subsidy"),
                per_person: r.amount(section, "per_person", "price_subsidy"),
            }
        });

        let disability_subsidy = top.and_then(|t| t.get("disability_subsidy")).map(|node| {
            let path = "disability_subsidy";
            let section = r.map(
                Some(node),
                path,
                &[
                    "living_amount",
                    "care_amount_grade1",
                    "care_amount_grade2",
                    "care_includes_grade3_intellectual_mental",
                ],
            );
            DisabilitySubsidyPolicy {
                living_amount: r.amount(section, "living_amount", path),
                care_amount_grade1: r.amount(section, "care_amount_grade1", path),
                care_amount_grade2: r.amount(section, "care_amount_grade2", path),
                care_includes_grade3_intellectual_mental: r.boolean(
                    section,
                    "care_includes_grade3_intellectual_mental",
                    path,
                ),
            }
        });
        let orphan_allowance = top.and_then(|t| t.get("orphan_allowance")).map(|node| {
            let path = "orphan_allowance";
            let section = r.map(Some(node), path, &["institution", "scattered"]);
            OrphanAllowancePolicy {
                institution: r.amount(section, "institution", path),
                scattered: r.amount(section, "scattered", path),
            }
        });
        let funeral_aid = top.and_then(|t| t.get("funeral_aid")).map(|node| {
            let path = "funeral_aid";
            let section = r.map(Some(node), path, &["caps", "lump_sum"]);
            let caps_path = "funeral_aid.caps";
            let caps = r.map(
                section.and_then(|s| s.get("caps")),
                caps_path,
                &["transport", "storage", "cremation", "ash_storage"],
            );
            FuneralAidPolicy {
                caps: FuneralCaps {
                    transport: r.amount(caps, "transport", caps_path),
                    storage: r.amount(caps, "storage", caps_path),
                    cremation: r.amount(caps, "cremation", caps_path),
                    ash_storage: r.amount(caps, "ash_storage", caps_path),
                },
                lump_sum: r.amount(section, "lump_sum", path),
            }
        });
        let reserve_fund = top.and_then(|t| t.get("reserve_fund")).map(|node| {
            let section = r.map(Some(node), "reserve_fund", &["ceiling"]);
            ReserveFundPolicy {
                ceiling: r.amount(section, "ceiling", "reserve_fund"),
            }
        });

        if !r.problems.is_empty() {
            return Err(PolicyError::Invalid {
                file: file.to_string(),
                problems: r.problems,
            });
        }
        Ok(Policy {
            effective_from,
            jurisdiction,
            dibao,
            low_income,
            tekun,
            temporary_aid,
            heating_aid,
            price_subsidy,
            disability_subsidy,
            orphan_allowance,
            funeral_aid,
            reserve_fund,
            source: file.to_string(),
        })
    }

    /// Reads a policy file; messages name it by its file name.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let file = display_name(path);
        let src = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            file: file.clone(),
            source,
        })?;
        Policy::from_yaml(&src, &file)
    }

    /// The standard `S` of an area (`urban` / `rural`).
    pub fn standard(&self, area: crate::case::Area) -> Decimal {
        match area {
            crate::case::Area::Urban => self.dibao.standard.urban,
            crate::case::Area::Rural => self.dibao.standard.rural,
        }
    }

    /// The figures as an expression value `policy`, shaped like the YAML file.
    pub fn to_value(&self) -> Value {
        fn obj(entries: Vec<(&str, Value)>) -> Value {
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            )
        }
        let d = Value::Decimal;
        obj(vec![
            ("effective_from", Value::Date(self.effective_from)),
            ("jurisdiction", Value::Str(self.jurisdiction.clone())),
            (
                "dibao",
                obj(vec![
                    (
                        "standard",
                        obj(vec![
                            ("urban", d(self.dibao.standard.urban)),
                            ("rural", d(self.dibao.standard.rural)),
                        ]),
                    ),
                    ("supplement_rate", d(self.dibao.supplement_rate)),
                    ("savings_months", d(self.dibao.savings_months)),
                    (
                        "employment_cost",
                        obj(vec![
                            ("rate", d(self.dibao.employment_cost.rate)),
                            ("cap", d(self.dibao.employment_cost.cap)),
                        ]),
                    ),
                    ("single_person_subsidy", d(self.dibao.single_person_subsidy)),
                    (
                        "severe_includes_grade3_intellectual_mental",
                        Value::Bool(self.dibao.severe_includes_grade3_intellectual_mental),
                    ),
                ]),
            ),
            ("low_income", obj(vec![("ratio", d(self.low_income.ratio))])),
            (
                "tekun",
                obj(vec![
                    ("basic_ratio", d(self.tekun.basic_ratio)),
                    ("minimum_wage", d(self.tekun.minimum_wage)),
                    (
                        "care_divisor",
                        obj(vec![
                            ("full", d(self.tekun.care_divisor.full)),
                            ("semi", d(self.tekun.care_divisor.semi)),
                            ("self", d(self.tekun.care_divisor.self_care)),
                        ]),
                    ),
                ]),
            ),
            (
                "temporary_aid",
                obj(vec![
                    (
                        "township_ceiling_months",
                        d(self.temporary_aid.township_ceiling_months),
                    ),
                    (
                        "county_ceiling_months",
                        d(self.temporary_aid.county_ceiling_months),
                    ),
                    ("advance_cap", d(self.temporary_aid.advance_cap)),
                    (
                        "disposable_income_per_capita",
                        d(self.temporary_aid.disposable_income_per_capita),
                    ),
                ]),
            ),
            // An optional section the file lacks is null: reading a figure of it fails
            // the expression, naming the section.
            (
                "heating_aid",
                self.heating_aid.as_ref().map_or(Value::Null, |h| {
                    obj(vec![
                        ("per_household", d(h.per_household)),
                        ("includes_low_income", Value::Bool(h.includes_low_income)),
                    ])
                }),
            ),
            (
                "price_subsidy",
                self.price_subsidy.as_ref().map_or(Value::Null, |p| {
                    obj(vec![
                        ("threshold_percent", d(p.threshold_percent)),
                        ("per_person", d(p.per_person)),
                    ])
                }),
            ),
            (
                "disability_subsidy",
                self.disability_subsidy.as_ref().map_or(Value::Null, |p| {
                    obj(vec![
                        ("living_amount", d(p.living_amount)),
                        ("care_amount_grade1", d(p.care_amount_grade1)),
                        ("care_amount_grade2", d(p.care_amount_grade2)),
                        (
                            "care_includes_grade3_intellectual_mental",
                            Value::Bool(p.care_includes_grade3_intellectual_mental),
                        ),
                    ])
                }),
            ),
            (
                "orphan_allowance",
                self.orphan_allowance.as_ref().map_or(Value::Null, |p| {
                    obj(vec![
                        ("institution", d(p.institution)),
                        ("scattered", d(p.scattered)),
                    ])
                }),
            ),
            (
                "funeral_aid",
                self.funeral_aid.as_ref().map_or(Value::Null, |p| {
                    obj(vec![
                        (
                            "caps",
                            obj(vec![
                                ("transport", d(p.caps.transport)),
                                ("storage", d(p.caps.storage)),
                                ("cremation", d(p.caps.cremation)),
                                ("ash_storage", d(p.caps.ash_storage)),
                            ]),
                        ),
                        ("lump_sum", d(p.lump_sum)),
                    ])
                }),
            ),
            (
                "reserve_fund",
                self.reserve_fund
                    .as_ref()
                    .map_or(Value::Null, |p| obj(vec![("ceiling", d(p.ceiling))])),
            ),
        ])
    }

    /// The static type of [`Policy::to_value`], for checking rule expressions.
    pub fn value_type() -> Type {
        fn obj(entries: Vec<(&str, Type)>) -> Type {
            Type::Object {
                fields: entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<BTreeMap<_, _>>(),
                open: false,
            }
        }
        let dec = || Type::Decimal;
        obj(vec![
            ("effective_from", Type::Date),
            ("jurisdiction", Type::String),
            (
                "dibao",
                obj(vec![
                    ("standard", obj(vec![("urban", dec()), ("rural", dec())])),
                    ("supplement_rate", dec()),
                    ("savings_months", dec()),
                    (
                        "employment_cost",
                        obj(vec![("rate", dec()), ("cap", dec())]),
                    ),
                    ("single_person_subsidy", dec()),
                    ("severe_includes_grade3_intellectual_mental", Type::Bool),
                ]),
            ),
            ("low_income", obj(vec![("ratio", dec())])),
            (
                "tekun",
                obj(vec![
                    ("basic_ratio", dec()),
                    ("minimum_wage", dec()),
                    (
                        "care_divisor",
                        obj(vec![("full", dec()), ("semi", dec()), ("self", dec())]),
                    ),
                ]),
            ),
            (
                "temporary_aid",
                obj(vec![
                    ("township_ceiling_months", dec()),
                    ("county_ceiling_months", dec()),
                    ("advance_cap", dec()),
                    ("disposable_income_per_capita", dec()),
                ]),
            ),
            (
                "heating_aid",
                obj(vec![
                    ("per_household", dec()),
                    ("includes_low_income", Type::Bool),
                ]),
            ),
            (
                "price_subsidy",
                obj(vec![("threshold_percent", dec()), ("per_person", dec())]),
            ),
            (
                "disability_subsidy",
                obj(vec![
                    ("living_amount", dec()),
                    ("care_amount_grade1", dec()),
                    ("care_amount_grade2", dec()),
                    ("care_includes_grade3_intellectual_mental", Type::Bool),
                ]),
            ),
            (
                "orphan_allowance",
                obj(vec![("institution", dec()), ("scattered", dec())]),
            ),
            (
                "funeral_aid",
                obj(vec![
                    (
                        "caps",
                        obj(vec![
                            ("transport", dec()),
                            ("storage", dec()),
                            ("cremation", dec()),
                            ("ash_storage", dec()),
                        ]),
                    ),
                    ("lump_sum", dec()),
                ]),
            ),
            ("reserve_fund", obj(vec![("ceiling", dec())])),
        ])
    }
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Every policy file of a product, one per jurisdiction and effective date.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    pub fn new(policies: Vec<Policy>) -> PolicySet {
        PolicySet { policies }
    }

    /// Loads every `*.yaml` file directly under `dir`, reporting every broken file.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, Vec<PolicyError>> {
        let entries = std::fs::read_dir(dir).map_err(|source| {
            vec![PolicyError::Io {
                file: dir.display().to_string(),
                source,
            }]
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        let mut policies = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            match Policy::load(&path) {
                Ok(p) => policies.push(p),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(PolicySet { policies })
        } else {
            Err(errors)
        }
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The policy in force for `unit` (a path like `双鸭山市/尖山区/中心站街道`) on
    /// `as_of`: among policies already effective, the most specific jurisdiction
    /// (the longest whole-segment prefix of the unit), then the latest
    /// `effective_from`. A change on 2026-07-01 applies to a case on that day.
    pub fn select(&self, unit: &str, as_of: NaiveDate) -> Option<&Policy> {
        let unit = unit.trim_matches('/');
        self.policies
            .iter()
            .filter(|p| p.effective_from <= as_of)
            .filter(|p| {
                let j = p.jurisdiction.as_str();
                unit == j
                    || unit
                        .strip_prefix(j)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|p| (p.jurisdiction.split('/').count(), p.effective_from))
    }
}
