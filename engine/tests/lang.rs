//! Tests of the process-language loader: every broken fixture yields its
//! expected diagnostics (snapshots next to the fixture), good definitions
//! compile, and no input makes the loader panic.

use std::path::{Path, PathBuf};

use expect_test::expect_file;
use jiuzhu_engine::effects::catalog::load_templates;
use jiuzhu_engine::lang::model::{NodeKind, TimerSpec};
use jiuzhu_engine::lang::{LoadContext, TemplateVars, load_definition, load_dir, render};
use jiuzhu_engine::org::Org;
use proptest::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn context() -> LoadContext {
    let org = Org::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes/org.yaml"))
        .expect("the org file loads");
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let mut templates =
        load_templates(&project.join("templates")).expect("the project's templates load");
    // The templates the fixtures name besides the project's.
    templates.insert("vote_done".into(), TemplateVars::default());
    templates.insert("every_node_rejected".into(), TemplateVars::default());
    LoadContext::default()
        .with_roles(org.role_ids())
        .with_calendars(["cn"])
        .with_purposes(org.purpose_ids())
        .with_templates(templates)
}

/// The rendered outcome of loading `src`: the diagnostics, or `ok`.
fn outcome(src: &str, name: &str) -> String {
    match load_definition(src, name, &context()) {
        Ok(definition) => format!("ok {}\n", definition.id),
        Err(diagnostics) => render(&diagnostics),
    }
}

#[test]
fn each_broken_fixture_reports_its_problem() {
    let mut checked = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(fixtures().join("broken"))
        .expect("fixtures/broken exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 name");
        let src = std::fs::read_to_string(&path).expect("fixture is readable");
        let actual = outcome(&src, name);
        assert!(!actual.starts_with("ok "), "{name} should not load");
        expect_file![format!(
            "fixtures/broken/{}.expected",
            name.trim_end_matches(".yaml")
        )]
        .assert_eq(&actual);
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} broken fixtures were found");
}

#[test]
fn the_definition_with_every_node_type_compiles() {
    let src = std::fs::read_to_string(fixtures().join("valid_all_nodes.yaml")).expect("fixture");
    let definition = load_definition(&src, "valid_all_nodes.yaml", &context())
        .unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(definition.id, "every_node");
    assert_eq!(definition.nodes[definition.start].id, "accept");
    let kinds: Vec<&str> = definition
        .nodes
        .iter()
        .map(|n| match &n.kind {
            NodeKind::Task(_) => "task",
            NodeKind::Rule(_) => "rule",
            NodeKind::Compute => "compute",
            NodeKind::Choice => "choice",
            NodeKind::Parallel { .. } => "parallel",
            NodeKind::Join { .. } => "join",
            NodeKind::Timer(_) => "timer",
            NodeKind::Receive(_) => "receive",
            NodeKind::Batch(_) => "batch",
            NodeKind::End { .. } => "end",
        })
        .collect();
    for kind in [
        "task", "rule", "compute", "choice", "parallel", "join", "timer", "receive", "end",
    ] {
        assert!(kinds.contains(&kind), "no {kind} node");
    }
    let join = definition.node_index("checks_done").expect("join");
    let split = definition.node_index("checks").expect("split");
    match &definition.nodes[join].kind {
        NodeKind::Join { split: s, expected } => assert_eq!((*s, *expected), (split, 2)),
        other => panic!("checks_done is {other:?}"),
    }
    match &definition.nodes[definition.node_index("cooling_off").expect("timer")].kind {
        NodeKind::Timer(TimerSpec::After(d)) => assert_eq!(d.to_string(), "2d"),
        other => panic!("cooling_off is {other:?}"),
    }
    assert_eq!(definition.deadlines[0].due.to_string(), "20wd");
    let extend = definition.message("extend").expect("extend");
    assert_eq!(extend.reschedule.len(), 1);
    assert_eq!(definition.schedules[0].cron, "0 0 9 1 11 *");
}

#[test]
fn a_file_with_several_problems_reports_them_all() {
    let src = "\
process: several
variables:
  amount: decimal
nodes:
  - id: start
    type: task
    role: township_clrek
    set: {amount: \"form.amount + 1\", amonut: \"1\"}
    deadline: {due: 5 days}
    next: finish
  - {id: finish, type: end, outcome: done, emit: [{notification: {template: x}, if: \"amount\"}]}
";
    expect_test::expect![[r#"
        several.yaml:7:11: E_UNKNOWN_ROLE: unknown role `township_clrek`
          hint: did you mean `township_clerk`?
        several.yaml:8:20: E_UNKNOWN_FIELD: the object has no field `amount`
        several.yaml:8:38: E_UNKNOWN_VARIABLE: `set` assigns the undeclared variable `amonut`
          hint: did you mean `amount`?
        several.yaml:9:21: E_BAD_DURATION: due: bad duration "5 days": expected <number><unit> with unit wd, d, h, min, mo or y
          hint: durations are 5wd (working days), 7d, 36h, 30min, 6mo or 1y
        several.yaml:11:77: E_UNKNOWN_TEMPLATE: unknown notification template `x`
          hint: known: deadline_reminder, dibao_approved, dibao_missing_materials, dibao_rejected, dibao_review_stopped, dibao_standard_adjusted, disability_subsidy_approved, disability_subsidy_missing_materials, disability_subsidy_rejected, escalation, every_node_rejected, funeral_aid_approved, funeral_aid_rejected, heating_aid_paid, low_income_approved, low_income_missing_materials, low_income_rejected, low_income_review_stopped, orphan_allowance_approved, orphan_allowance_missing_materials, orphan_allowance_rejected, price_subsidy_paid, referral_reminder, referral_sent, task_reminder, tekun_approved, tekun_missing_materials, tekun_rejected, tekun_withdrawn, temporary_aid_approved, temporary_aid_missing_materials, temporary_aid_rejected, vote_done
        several.yaml:11:86: E_TYPE: a condition must be a bool, but `amount` is decimal
    "#]]
    .assert_eq(&outcome(src, "several.yaml"));
}

#[test]
fn expression_errors_point_into_quoted_and_block_scalars() {
    let src = "\
process: positions
variables:
  flag: bool
nodes:
  - id: a
    type: compute
    set:
      flag: 'flga'
    next: b
  - id: b
    type: compute
    set:
      flag: \"\\t flga\"
    next: c
  - id: c
    type: compute
    set:
      flag: |
        true and
          flga
    next: d
  - {id: d, type: end}
";
    let rendered = outcome(src, "p.yaml");
    let positions: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.starts_with("  hint"))
        .map(|l| l.split(": ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        positions,
        ["p.yaml:8:14", "p.yaml:13:17", "p.yaml:20:11"],
        "{rendered}"
    );
}

#[test]
fn a_ten_megabyte_file_is_refused_before_parsing() {
    let mut src = String::from("process: big\nnodes:\n");
    while src.len() < 10 * 1024 * 1024 {
        src.push_str("  - {id: n, type: end}  # padding padding padding padding padding\n");
    }
    expect_test::expect![[r#"
        big.yaml:1:1: E_TOO_LARGE: the file is 10485770 bytes; a definition may be at most 1048576 bytes (1 MiB)
          hint: split the procedure into several processes linked by start_process
    "#]]
    .assert_eq(&outcome(&src, "big.yaml"));
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused() {
    let flow = format!(
        "process: deep\nnodes: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let block = {
        let mut s = String::from("process: deep\nvariables:\n");
        for depth in 1..200 {
            s.push_str(&" ".repeat(depth * 2));
            s.push_str("a:\n");
        }
        s
    };
    expect_test::expect![[r#"
        flow.yaml:2:72: E_TOO_DEEP: nesting deeper than 64 levels
          hint: flatten the structure; definitions never need this depth
        block.yaml:66:129: E_TOO_DEEP: nesting deeper than 64 levels
          hint: flatten the structure; definitions never need this depth
    "#]]
    .assert_eq(&format!(
        "{}{}",
        outcome(&flow, "flow.yaml"),
        outcome(&block, "block.yaml")
    ));
}

#[test]
fn load_dir_checks_started_processes_across_the_set() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("a.yaml"),
        "process: a\nnodes:\n  - id: done\n    type: end\n    emit:\n      - start_process: {process: b}\n      - start_process: {process: c}\n",
    )
    .expect("write a");
    std::fs::write(
        dir.path().join("b.yaml"),
        "process: b\nnodes: [{id: done, type: end}]\n",
    )
    .expect("write b");
    std::fs::write(dir.path().join("org.yaml"), "roles: {}\n").expect("write org");
    std::fs::create_dir(dir.path().join("scenarios")).expect("subfolder");
    std::fs::write(dir.path().join("scenarios/x.yaml"), "not: [a definition")
        .expect("write scenario");
    let (loaded, diagnostics) = load_dir(dir.path(), &LoadContext::default());
    let ids: Vec<&str> = loaded.iter().map(|(_, d)| d.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let rendered = render(&diagnostics).replace(&dir.path().display().to_string(), "DIR");
    expect_test::expect![[r#"
        DIR/a.yaml:7:34: E_UNKNOWN_PROCESS: start_process names the unknown process `c`
          hint: known processes: a, b
    "#]]
    .assert_eq(&rendered);
}

/// A valid definition to mutate.
const SEED: &str = include_str!("fixtures/valid_all_nodes.yaml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let src = String::from_utf8_lossy(&bytes);
        let _ = load_definition(&src, "random.yaml", &context());
    }

    #[test]
    fn mutated_definitions_never_panic(
        edits in proptest::collection::vec((0usize..SEED.len(), 0usize..24, "[-a-z0-9 :'\"\\[\\]{}=!.\n\t#|>&*]{0,6}"), 1..6)
    ) {
        let mut src = SEED.to_string();
        for (at, remove, insert) in edits {
            let mut at = at.min(src.len());
            while !src.is_char_boundary(at) { at -= 1; }
            let mut end = (at + remove).min(src.len());
            while !src.is_char_boundary(end) { end -= 1; }
            src.replace_range(at..end, &insert);
        }
        match load_definition(&src, "mutated.yaml", &context()) {
            Ok(_) => {}
            Err(diagnostics) => prop_assert!(!diagnostics.is_empty()),
        }
    }
}

#[test]
fn the_diagram_shows_shapes_conditions_messages_and_notes() {
    let src = std::fs::read_to_string(fixtures().join("valid_all_nodes.yaml")).expect("fixture");
    let definition = load_definition(&src, "valid_all_nodes.yaml", &context())
        .unwrap_or_else(|d| panic!("{}", render(&d)));
    expect_file!["fixtures/valid_all_nodes.mmd"]
        .assert_eq(&jiuzhu_engine::diagram::mermaid(&definition));
}

/// The effect table of `docs/process-language.md` is the one generated from the effect
/// schemas (`UPDATE_EXPECT=1` rewrites it).
#[test]
fn the_documented_effect_table_is_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/process-language.md");
    let doc = std::fs::read_to_string(&path).expect("the language doc");
    let (begin, end) = ("<!-- effects:begin -->\n", "<!-- effects:end -->");
    let start = doc
        .find(begin)
        .expect("the doc marks the effect table's start")
        + begin.len();
    let stop = doc.find(end).expect("the doc marks the effect table's end");
    assert!(start <= stop, "the markers are out of order");
    let table = jiuzhu_engine::effects::schema::markdown_table();
    if doc[start..stop] != table && std::env::var_os("UPDATE_EXPECT").is_some() {
        let updated = format!("{}{}{}", &doc[..start], table, &doc[stop..]);
        std::fs::write(&path, updated).expect("the doc is writable");
        return;
    }
    assert_eq!(
        doc[start..stop],
        table,
        "docs/process-language.md's effect table differs from the schema; run with UPDATE_EXPECT=1"
    );
}

#[test]
fn the_project_loads_under_the_effect_schemas() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    if let Err(errors) = jiuzhu_engine::project::Project::load(&dir) {
        panic!("{}", errors.join("\n"));
    }
}
