//! What `scripts/bench-report` needs besides criterion's own results: each group's rows in
//! the order they ran, the row each one is compared against, and its throughput unit.

use std::path::PathBuf;

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use serde_json::{Value, json};

/// The manifest, written to `$COFFER_BENCH_MANIFEST` at the end of the run (if set).
pub(crate) struct Report {
    path: Option<PathBuf>,
    groups: Vec<Value>,
}

impl Report {
    pub(crate) fn from_env() -> Self {
        Self {
            path: std::env::var_os("COFFER_BENCH_MANIFEST").map(PathBuf::from),
            groups: Vec::new(),
        }
    }

    /// Opens a criterion group named `name`; `about` says in one sentence what it compares.
    pub(crate) fn group<'a>(
        &'a mut self,
        c: &'a mut Criterion,
        name: &str,
        about: &str,
    ) -> Group<'a> {
        self.groups
            .push(json!({ "group": name, "about": about, "rows": [] }));
        let info = self.groups.last_mut().expect("just pushed");
        Group {
            inner: c.benchmark_group(name),
            rows: info["rows"].as_array_mut().expect("rows is an array"),
            throughput: None,
        }
    }

    pub(crate) fn write(&self) {
        let Some(path) = &self.path else { return };
        let text = serde_json::to_string_pretty(&json!({ "groups": self.groups }))
            .expect("the manifest is JSON");
        std::fs::write(path, text)
            .unwrap_or_else(|e| panic!("write the manifest {}: {e}", path.display()));
    }
}

/// A criterion group that also records its rows for the report.
pub(crate) struct Group<'a> {
    inner: BenchmarkGroup<'a, WallTime>,
    rows: &'a mut Vec<Value>,
    throughput: Option<Value>,
}

impl Group<'_> {
    pub(crate) fn sample_size(&mut self, n: usize) -> &mut Self {
        self.inner.sample_size(n);
        self
    }

    /// Sets the work one iteration does, for this and the following rows.
    pub(crate) fn throughput(&mut self, throughput: Throughput) -> &mut Self {
        self.throughput = Some(match throughput {
            Throughput::Bytes(n) => json!({ "bytes": n }),
            Throughput::Elements(n) => json!({ "elements": n }),
            other => panic!("unsupported throughput {other:?}"),
        });
        self.inner.throughput(throughput);
        self
    }

    /// One row, compared against the row `baseline` (same group, same parameter), if any.
    pub(crate) fn row<F>(&mut self, function: &str, baseline: Option<&str>, f: F) -> &mut Self
    where
        F: FnMut(&mut Bencher<'_, WallTime>),
    {
        self.record(function, None, baseline);
        self.inner.bench_function(function, f);
        self
    }

    /// [`Group::row`] with a parameter (a size, say).
    pub(crate) fn row_with<F>(
        &mut self,
        function: &str,
        parameter: &str,
        baseline: Option<&str>,
        f: F,
    ) -> &mut Self
    where
        F: FnMut(&mut Bencher<'_, WallTime>),
    {
        self.record(function, Some(parameter), baseline);
        self.inner
            .bench_function(BenchmarkId::new(function, parameter), f);
        self
    }

    fn record(&mut self, function: &str, parameter: Option<&str>, baseline: Option<&str>) {
        self.rows.push(json!({
            "function": function,
            "parameter": parameter,
            "baseline": baseline,
            "throughput": self.throughput,
        }));
    }

    pub(crate) fn finish(self) {
        self.inner.finish();
    }
}
