//! The .env writer against the readers that matter: dotenvy (property tests), and bash
//! and python-dotenv on generated files.

use std::collections::BTreeMap;
use std::process::Command;

use coffer_env::{EnvMap, EnvWriter, Error, Format};
use proptest::prelude::*;
use rand::SeedableRng as _;

/// Values that exercise every quoting rule.
const TRICKY: &[&str] = &[
    "",
    "plain",
    "it's",
    "say \"hi\"",
    "both ' and \"",
    "$HOME",
    "$(id)",
    "`id`",
    "${HOME:-x}",
    "a${b",
    "back\\slash",
    "two \\\\ backslashes",
    "\\n is not a newline",
    "# not a comment",
    "x #also not",
    "  leading and trailing  ",
    "line one\nline two\n",
    "\n",
    "tab\there",
    "k=v=w",
    "é ü 日本語 🔑",
    "'",
    "\"",
    "\\\"",
    "it's $5",
    "cr\r\nlf",
    "ends with \\",
    "\\'",
    "!history !! !$",
    "semi;colon && pipe | amp &",
];

/// Reads `text` with dotenvy.
fn dotenvy_read(text: &str) -> Result<BTreeMap<String, String>, dotenvy::Error> {
    dotenvy::from_read_iter(text.as_bytes()).collect()
}

/// What makes a value impossible to write portably, checked independently of the
/// writer's own rules: a carriage return, a trailing backslash, `${…}`, or a quote or
/// double backslash together with `$` or a backtick.
fn plausibly_unportable(value: &str) -> bool {
    value.contains('\r')
        || value.ends_with('\\')
        || value.contains("${")
        || ((value.contains('\'') || value.contains("\\\\"))
            && (value.contains('$') || value.contains('`')))
}

fn map_of(values: &[String]) -> (EnvMap, Vec<(String, String)>) {
    let mut map = EnvMap::new();
    let mut kept = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let name = format!("V{i}");
        let mut single = EnvMap::new();
        single.insert(&name, value.clone().into()).unwrap();
        match EnvWriter::new(Format::Dotenv).render(&single) {
            Ok(_) => {
                map.insert(&name, value.clone().into()).unwrap();
                kept.push((name, value.clone()));
            }
            Err(Error::NotPortable { name: n, .. }) => {
                assert_eq!(n, name);
                assert!(plausibly_unportable(value), "refused {value:?}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    (map, kept)
}

fn value_strategy() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\'', '"', '$', '`', '\\', '#', ' ', '\t', '\n', '\r', '=', '(', ')', '{', '}', 'é', '日',
        '🔑', '!', ';', 'a', 'Z', '0',
    ]);
    let ch = prop_oneof![
        3 => special,
        1 => any::<char>().prop_filter("no NUL", |c| *c != '\0'),
    ];
    prop::collection::vec(ch, 0..40).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every value the writer accepts reads back exactly through dotenvy, with and
    /// without `export`, alone and between neighbours; every value it refuses has a
    /// reason.
    #[test]
    fn dotenv_round_trips_through_dotenvy(values in prop::collection::vec(value_strategy(), 1..6),
                                          export in any::<bool>()) {
        let (map, kept) = map_of(&values);
        let text = EnvWriter::new(Format::Dotenv).export(export).render(&map).unwrap();
        let read = dotenvy_read(&text).unwrap_or_else(|e| panic!("{e} in {:?}", &*text));
        let want: BTreeMap<String, String> = kept.into_iter().collect();
        prop_assert_eq!(read, want);
    }

    /// The JSON format carries every value.
    #[test]
    fn json_carries_everything(value in value_strategy()) {
        let mut map = EnvMap::new();
        map.insert("V", value.clone().into()).unwrap();
        let text = EnvWriter::new(Format::Json).render(&map).unwrap();
        let read: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(read.get("V"), Some(&value));
    }
}

/// The tricky values plus `n` random ones from a seeded generator.
fn sample_values(n: usize) -> Vec<String> {
    let seed: u64 = rand::rng().random();
    eprintln!("random values from seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let alphabet: Vec<char> = "'\"$`\\# \t\n=(){}é日🔑!;aZ0".chars().collect();
    let mut values: Vec<String> = TRICKY.iter().map(|s| (*s).to_owned()).collect();
    for _ in 0..n {
        let len = rng.random_range(0..24);
        values.push(
            (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect(),
        );
    }
    values
}

/// Sources `file` in a bash with an empty environment (`set -a; . file`) and returns
/// the variables it ends with.
fn bash_read(file: &std::path::Path) -> BTreeMap<String, String> {
    let out = Command::new("env")
        .args(["-i", "bash", "--noprofile", "--norc", "-c"])
        .arg("set -a; . \"$1\" || exit 97; exec env -0")
        .arg("bash")
        .arg(file)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let entry = String::from_utf8(entry.to_vec()).unwrap();
            let (k, v) = entry.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Reads `file` with python-dotenv's `dotenv_values` (interpolation on, its default), or
/// `None` when python-dotenv is missing and services are not required.
fn python_read(file: &std::path::Path) -> Option<BTreeMap<String, String>> {
    let script = "import json, sys\nfrom dotenv import dotenv_values\n\
                  sys.stdout.write(json.dumps(dotenv_values(sys.argv[1])))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .output()
        .expect("python3 runs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !coffer_testkit::services_required(),
            "python-dotenv: {err} (scripts/test installs it with pip)"
        );
        eprintln!("skipping python-dotenv: {err}");
        return None;
    }
    assert!(
        out.stderr.is_empty(),
        "python-dotenv warned: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn only<'a>(
    read: &'a BTreeMap<String, String>,
    names: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, String> {
    names
        .filter_map(|n| read.get(n).map(|v| (n.clone(), v.clone())))
        .collect()
}

#[test]
fn dotenv_files_read_back_in_bash_python_and_dotenvy() {
    let values = sample_values(300);
    let (map, kept) = map_of(&values);
    let refused = values.len() - kept.len();
    assert!(kept.len() > values.len() / 2, "too many refused: {refused}");
    let want: BTreeMap<String, String> = kept.into_iter().collect();
    let dir = tempfile::tempdir().unwrap();
    for export in [false, true] {
        let file = dir.path().join(if export { "export.env" } else { ".env" });
        EnvWriter::new(Format::Dotenv)
            .export(export)
            .write_file(&map, &file)
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            dotenvy_read(&text).unwrap(),
            want,
            "dotenvy, export={export}"
        );
        assert_eq!(
            only(&bash_read(&file), want.keys()),
            want,
            "bash, export={export}"
        );
        if let Some(read) = python_read(&file) {
            assert_eq!(read, want, "python-dotenv, export={export}");
        }
    }
}

#[test]
fn shell_format_carries_every_value_through_bash() {
    let values = sample_values(300);
    let mut map = EnvMap::new();
    let mut want = BTreeMap::new();
    for (i, value) in values.iter().enumerate() {
        map.insert(format!("V{i}"), value.clone().into()).unwrap();
        want.insert(format!("V{i}"), value.clone());
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env.sh");
    EnvWriter::new(Format::Shell)
        .write_file(&map, &file)
        .unwrap();
    assert_eq!(only(&bash_read(&file), want.keys()), want);
}

#[test]
fn files_are_private_and_replaced_atomically() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub").join(".env");
    let mut map = EnvMap::new();
    map.insert("A", "first".into()).unwrap();
    EnvWriter::new(Format::Dotenv)
        .write_file(&map, &file)
        .unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A refused value leaves the old file as it was, and no temporary file behind.
    map.insert("B", "it's $5".into()).unwrap();
    let err = EnvWriter::new(Format::Dotenv)
        .write_file(&map, &file)
        .unwrap_err();
    assert!(err.to_string().contains("value of B"), "{err}");
    assert!(!err.to_string().contains("it's $5"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{}A='first'\n", coffer_env::EXPORT_MARKER)
    );
    let entries = std::fs::read_dir(file.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1);
}

/// The `dotenv` fuzz corpus, replayed on stable Rust through dotenvy.
#[test]
fn dotenv_fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/dotenv");
    let n = coffer_testkit::replay_corpus(&dir, |data| {
        coffer_env::fuzzing::dotenv_round_trip(data, |text| {
            dotenvy::from_read_iter(text.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())
        });
    });
    assert!(n >= 10, "corpus too small: {n} files");
}
