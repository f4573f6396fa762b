//! Forms generated from a definition: each declared field (a task's form, or the
//! variables a case starts with) becomes the control of its type — a choice for an enum
//! or a yes/no, a date picker, a money input, a list, the household editor — and a posted
//! form becomes the JSON object the engine checks. The engine stays the judge of what is
//! valid: values that do not parse are passed on as text, so its refusal (with the JSON
//! path of the field) is what the page shows, at the field it concerns.

use std::collections::BTreeMap;

use jiuzhu_engine::lang::model::{FieldDecl, VariableDecl};
use jiuzhu_rules::value::Type;
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::post::Posted;

/// A field of a generated form.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: String,
    pub label: String,
    pub ty: Type,
    pub required: bool,
    /// Required only under a condition (shown as a hint; the engine decides).
    pub required_when: Option<String>,
    pub min_items: Option<usize>,
}

impl FieldSpec {
    pub fn of_field(field: &FieldDecl) -> FieldSpec {
        FieldSpec {
            name: field.name.clone(),
            label: field.label.clone().unwrap_or_else(|| field.name.clone()),
            ty: field.ty.clone(),
            required: field.required,
            required_when: field.required_when.as_ref().map(|c| c.source().to_string()),
            min_items: field.min_items,
        }
    }

    pub fn of_variable(variable: &VariableDecl) -> FieldSpec {
        FieldSpec {
            name: variable.name.clone(),
            label: variable
                .label
                .clone()
                .unwrap_or_else(|| variable.name.clone()),
            ty: variable.ty.clone(),
            required: variable.required,
            required_when: None,
            min_items: None,
        }
    }

    fn is_household(&self) -> bool {
        matches!(&self.ty, Type::Object { fields, .. } if fields.contains_key("members"))
    }
}

/// One control of a rendered form.
#[derive(Debug, Clone, Serialize)]
pub struct FieldView {
    pub name: String,
    pub label: String,
    /// `bool`, `enum`, `money`, `int`, `date`, `datetime`, `text`, `list`, `household`,
    /// `object`.
    pub control: &'static str,
    pub required: bool,
    pub required_when: Option<String>,
    pub options: Vec<(String, String)>,
    pub value: String,
    pub min_items: Option<usize>,
    pub error: Option<String>,
    pub household: Option<HouseholdView>,
}

/// The household editor's rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HouseholdView {
    pub members: Vec<MemberView>,
    pub savings: String,
    pub rigid_expenses: String,
    pub supporter_able: String,
    pub vehicles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemberView {
    pub id: String,
    /// Never the stored name: the masked one, as a placeholder (an empty input keeps it).
    pub name_masked: String,
    pub birth_date: String,
    pub incomes: Vec<(String, String)>,
}

/// The Chinese label of an enum value the procedures use, or the value.
pub fn option_label(value: &str) -> String {
    match value {
        "approve" => "同意（批准）",
        "reject" => "不同意（不予批准）",
        "urban" => "城市",
        "rural" => "农村",
        other => other,
    }
    .to_string()
}

fn control_of(spec: &FieldSpec) -> &'static str {
    match &spec.ty {
        Type::Bool => "bool",
        Type::Enum(_) => "enum",
        Type::Decimal => "money",
        Type::Int => "int",
        Type::Date => "date",
        Type::DateTime => "datetime",
        Type::List(_) => "list",
        Type::Object { .. } if spec.is_household() => "household",
        Type::Object { .. } | Type::Any => "object",
        _ => "text",
    }
}

fn text_of(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join("\n"),
        Json::Object(_) => value.to_string(),
    }
}

fn household_view(value: Option<&Json>) -> HouseholdView {
    let Some(household) = value else {
        return HouseholdView {
            members: vec![MemberView {
                id: "m1".into(),
                incomes: vec![(String::new(), String::new())],
                ..MemberView::default()
            }],
            ..HouseholdView::default()
        };
    };
    let get = |key: &str| household.get(key).map(text_of).unwrap_or_default();
    let members = household
        .get("members")
        .and_then(Json::as_array)
        .map(|members| {
            members
                .iter()
                .map(|m| MemberView {
                    id: m.get("id").map(text_of).unwrap_or_default(),
                    name_masked: m
                        .get("name")
                        .and_then(Json::as_str)
                        .map(jiuzhu_engine::privacy::mask_name)
                        .unwrap_or_default(),
                    birth_date: m.get("birth_date").map(text_of).unwrap_or_default(),
                    incomes: m
                        .get("income")
                        .and_then(Json::as_array)
                        .map(|incomes| {
                            incomes
                                .iter()
                                .map(|i| {
                                    (
                                        i.get("kind").map(text_of).unwrap_or_default(),
                                        i.get("monthly").map(text_of).unwrap_or_default(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    HouseholdView {
        members,
        savings: get("savings"),
        rigid_expenses: get("rigid_expenses"),
        supporter_able: get("supporter_able"),
        vehicles: household
            .get("vehicles")
            .and_then(Json::as_array)
            .map(|v| {
                v.iter()
                    .map(|v| v.get("price").map(text_of).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The controls of `specs`, filled from `values` (defaults, the case, or what was
/// posted), with `errors` at their fields.
pub fn views(
    specs: &[FieldSpec],
    values: &Map<String, Json>,
    errors: &BTreeMap<String, String>,
) -> Vec<FieldView> {
    specs
        .iter()
        .map(|spec| {
            let control = control_of(spec);
            let options = match &spec.ty {
                Type::Enum(values) => values
                    .iter()
                    .map(|v| (v.clone(), option_label(v)))
                    .collect(),
                Type::Bool => vec![("true".into(), "是".into()), ("false".into(), "否".into())],
                _ => Vec::new(),
            };
            let household =
                (control == "household").then(|| household_view(values.get(&spec.name)));
            FieldView {
                name: spec.name.clone(),
                label: spec.label.clone(),
                control,
                required: spec.required,
                required_when: spec.required_when.clone(),
                options,
                value: values.get(&spec.name).map(text_of).unwrap_or_default(),
                min_items: spec.min_items,
                error: errors.get(&spec.name).cloned(),
                household,
            }
        })
        .collect()
}

/// A tree of posted names (`household.members.0.income.1.monthly`).
#[derive(Debug, Default)]
struct Tree {
    leaf: Option<String>,
    children: BTreeMap<String, Tree>,
}

impl Tree {
    fn insert(&mut self, path: &[&str], value: &str) {
        match path.split_first() {
            None => self.leaf = Some(value.to_string()),
            Some((head, rest)) => self
                .children
                .entry(head.to_string())
                .or_default()
                .insert(rest, value),
        }
    }
}

/// A posted text as JSON of type `ty`: empty is absent; a yes/no becomes a boolean;
/// everything else stays text, which the engine reads as its type or refuses at its path.
fn leaf(ty: &Type, text: &str) -> Option<Json> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(match (ty, text) {
        (Type::Bool, "true") => Json::Bool(true),
        (Type::Bool, "false") => Json::Bool(false),
        _ => Json::String(text.to_string()),
    })
}

fn from_tree(ty: &Type, tree: &Tree) -> Option<Json> {
    match ty {
        Type::Object { fields, .. } if !tree.children.is_empty() => {
            let object: Map<String, Json> = tree
                .children
                .iter()
                .filter_map(|(key, child)| {
                    let child_ty = fields.get(key).cloned().unwrap_or(Type::Any);
                    from_tree(&child_ty, child).map(|v| (key.clone(), v))
                })
                .collect();
            (!object.is_empty()).then_some(Json::Object(object))
        }
        Type::List(item) if !tree.children.is_empty() => {
            let mut indexed: Vec<(usize, &Tree)> = tree
                .children
                .iter()
                .filter_map(|(k, t)| k.parse().ok().map(|i| (i, t)))
                .collect();
            indexed.sort_by_key(|(i, _)| *i);
            let items: Vec<Json> = indexed
                .into_iter()
                .filter_map(|(_, t)| from_tree(item, t))
                .collect();
            (!items.is_empty()).then_some(Json::Array(items))
        }
        Type::List(item) => {
            let text = tree.leaf.as_deref()?;
            let items: Vec<Json> = text.lines().filter_map(|line| leaf(item, line)).collect();
            (!items.is_empty()).then_some(Json::Array(items))
        }
        _ => tree.leaf.as_deref().and_then(|text| leaf(ty, text)),
    }
}

/// The JSON object the engine gets from a posted form: the declared fields by their
/// types; names starting with `_` are the page's own (token, version) and left out;
/// any other name is passed on, so the engine refuses an unknown field by its name.
/// A household member whose name input was left empty keeps the stored name.
pub fn data_of(
    specs: &[FieldSpec],
    posted: &Posted,
    stored: &Map<String, Json>,
) -> Map<String, Json> {
    let mut trees: BTreeMap<String, Tree> = BTreeMap::new();
    for (name, value) in &posted.0 {
        if name.starts_with('_') {
            continue;
        }
        let path: Vec<&str> = name.split('.').collect();
        if let Some((head, rest)) = path.split_first() {
            trees
                .entry(head.to_string())
                .or_default()
                .insert(rest, value);
        }
    }
    let mut data = Map::new();
    for (name, tree) in &trees {
        let ty = specs
            .iter()
            .find(|s| &s.name == name)
            .map(|s| s.ty.clone())
            .unwrap_or(Type::String);
        let is_household = specs.iter().any(|s| &s.name == name && s.is_household());
        if let Some(mut value) = from_tree(&ty, tree) {
            if is_household {
                keep_member_names(&mut value, stored.get(name));
            }
            data.insert(name.clone(), value);
        }
    }
    data
}

fn keep_member_names(household: &mut Json, stored: Option<&Json>) {
    let names: BTreeMap<String, Json> = stored
        .and_then(|h| h.get("members"))
        .and_then(Json::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|m| Some((m.get("id")?.as_str()?.to_string(), m.get("name")?.clone())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(members) = household.get_mut("members").and_then(Json::as_array_mut) {
        for member in members {
            let id = member.get("id").and_then(Json::as_str).map(str::to_string);
            if let (Some(object), Some(id)) = (member.as_object_mut(), id)
                && !object.contains_key("name")
                && let Some(name) = names.get(&id)
            {
                object.insert("name".into(), name.clone());
            }
        }
    }
}

/// The field a refusal's JSON path concerns (`$.household.members[1].birth_date` →
/// `household`) and the message in Chinese, naming the place inside the field.
pub fn field_error(path: &str, message: &str) -> (String, String) {
    let rest = path.strip_prefix("$.").unwrap_or(path);
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    let (field, inner) = rest.split_at(end);
    let place = place_words(inner);
    let text = message_words(message);
    let text = if place.is_empty() {
        text
    } else {
        format!("{place}：{text}")
    };
    (field.to_string(), text)
}

fn place_words(inner: &str) -> String {
    let mut words = Vec::new();
    for part in inner.split(['.', '[']).filter(|p| !p.is_empty()) {
        if let Some(index) = part.strip_suffix(']') {
            let n = index.parse::<usize>().map(|i| i + 1).unwrap_or(0);
            words.push(format!("第{n}项"));
        } else {
            words.push(
                match part {
                    "members" => "家庭成员",
                    "income" => "收入",
                    "monthly" => "月收入",
                    "kind" => "类别",
                    "birth_date" => "出生日期",
                    "name" => "姓名",
                    "id" => "编号",
                    "savings" => "存款",
                    "vehicles" => "车辆",
                    "price" => "价格",
                    "rigid_expenses" => "刚性支出",
                    other => other,
                }
                .to_string(),
            );
        }
    }
    words.join(" ")
}

fn message_words(message: &str) -> String {
    if message == "required" {
        return "此项为必填项".into();
    }
    if let Some(condition) = message.strip_prefix("required when ") {
        return format!("在当前情况下此项为必填项（条件：{condition}）");
    }
    if message.starts_with("unknown field") {
        return "表单中没有这一项（页面可能已过期或被修改）".into();
    }
    if message.starts_with("must be one of") {
        return "请从给出的选项中选择".into();
    }
    if message.starts_with("expected a date YYYY-MM-DD") {
        return "日期格式应为 年-月-日，例如 2026-03-02".into();
    }
    if message.starts_with("expected decimal") || message.starts_with("expected int") {
        return "应填写数字".into();
    }
    if message.starts_with("expected bool") {
        return "请选择“是”或“否”".into();
    }
    if let Some(n) = message
        .strip_prefix("needs at least ")
        .and_then(|m| m.strip_suffix(" items"))
    {
        return format!("至少需要填写{n}项（每行一项）");
    }
    if let Some(n) = message.strip_prefix("must be >= ") {
        return format!("不能小于 {n}");
    }
    if let Some(n) = message.strip_prefix("must be <= ") {
        return format!("不能大于 {n}");
    }
    door_words(message).unwrap_or_else(|| message.to_string())
}

/// The checks at the door (`jiuzhu_rules::validate`) in Chinese.
fn door_words(message: &str) -> Option<String> {
    let words = if message == "must not be empty" {
        "不能为空"
    } else if message.starts_with("unknown income kind") {
        "收入类别不在规定的类别之中"
    } else if message.contains("ID number") {
        if message.contains("check character") {
            "身份证号码校验位不符，请核对"
        } else if message.contains("birth date") {
            "身份证号码中的出生日期不合理"
        } else {
            "身份证号码应为18位（17位数字加1位数字或X）"
        }
    } else if message.starts_with("a bank account") {
        "银行账号应为12至30位数字，不含空格或其他字符"
    } else if message.starts_with("birth date") && message.contains("in the future") {
        "出生日期不能晚于今天"
    } else if message.starts_with("birth date") && message.contains("before 1900") {
        "出生日期不能早于1900年"
    } else if message.starts_with("a name has") {
        "姓名过长或含有不可见字符"
    } else {
        return None;
    };
    Some(words.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household_spec() -> FieldSpec {
        FieldSpec {
            name: "household".into(),
            label: "家庭情况".into(),
            ty: jiuzhu_engine::lang::scope::household_type(),
            required: true,
            required_when: None,
            min_items: None,
        }
    }

    #[test]
    fn a_posted_household_becomes_the_engines_object() {
        let specs = vec![
            household_spec(),
            FieldSpec {
                name: "surveyors".into(),
                label: "调查人员".into(),
                ty: Type::list(Type::String),
                required: true,
                required_when: None,
                min_items: Some(2),
            },
            FieldSpec {
                name: "complete".into(),
                label: "材料齐全".into(),
                ty: Type::Bool,
                required: true,
                required_when: None,
                min_items: None,
            },
        ];
        let posted = Posted(
            [
                ("_csrf", "x"),
                ("complete", "true"),
                ("surveyors", "李四\r\n\n王五\n"),
                ("household.members.0.id", "m1"),
                ("household.members.0.birth_date", "1948-10-20"),
                ("household.members.0.income.0.kind", "pension_basic"),
                ("household.members.0.income.0.monthly", "180.00"),
                ("household.members.0.income.1.kind", ""),
                ("household.members.0.income.1.monthly", ""),
                ("household.members.1.id", ""),
                ("household.savings", "8000"),
                ("extra", "1"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let stored: Map<String, Json> = serde_json::from_value(serde_json::json!({
            "household": {"members": [{"id": "m1", "name": "张三"}]}
        }))
        .expect("json");
        let data = data_of(&specs, &posted, &stored);
        assert_eq!(
            Json::Object(data),
            serde_json::json!({
                "complete": true,
                "surveyors": ["李四", "王五"],
                "household": {
                    "members": [{"id": "m1", "name": "张三", "birth_date": "1948-10-20",
                                 "income": [{"kind": "pension_basic", "monthly": "180.00"}]}],
                    "savings": "8000"
                },
                "extra": "1"
            })
        );
    }

    #[test]
    fn a_refusal_lands_on_its_field_in_plain_words() {
        assert_eq!(
            field_error(
                "$.household.members[1].birth_date",
                "expected a date YYYY-MM-DD, found \"x\""
            ),
            (
                "household".to_string(),
                "家庭成员 第2项 出生日期：日期格式应为 年-月-日，例如 2026-03-02".to_string()
            )
        );
        assert_eq!(
            field_error("$.surveyors", "needs at least 2 items"),
            (
                "surveyors".to_string(),
                "至少需要填写2项（每行一项）".to_string()
            )
        );
        assert_eq!(field_error("$.proposal", "required").1, "此项为必填项");
    }
}
