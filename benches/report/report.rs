//! What `scripts/bench-report` needs besides criterion's own results: each group's rows in
//! the order they ran, the row each one is compared against, and its throughput unit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;

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

    /// Shorter warm-up and measurement, for groups of many rows.
    pub(crate) fn brief(&mut self) -> &mut Self {
        self.inner
            .warm_up_time(std::time::Duration::from_secs(1))
            .measurement_time(std::time::Duration::from_secs(3))
            .sample_size(10);
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

    /// One row of `op` run by `callers` concurrent tasks on `rt`, compared against the
    /// row `baseline` at the same parameter. Criterion's time per iteration is the wall
    /// time per operation of all callers together (its inverse is the throughput); each
    /// operation's own latency is kept too, and its p50 and p99 go into the manifest.
    pub(crate) fn row_concurrent(
        &mut self,
        function: &str,
        callers: usize,
        baseline: Option<&str>,
        rt: &tokio::runtime::Runtime,
        op: Op,
    ) -> &mut Self {
        let parameter = callers_label(callers);
        self.record(function, Some(&parameter), baseline);
        let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
        let next = Arc::new(AtomicUsize::new(0));
        self.inner
            .bench_function(BenchmarkId::new(function, &parameter), |b| {
                b.iter_custom(|iters| {
                    let per_caller = iters.div_ceil(callers as u64);
                    rt.block_on(async {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..callers)
                            .map(|_| {
                                let (op, next, latencies) =
                                    (Arc::clone(&op), Arc::clone(&next), Arc::clone(&latencies));
                                tokio::spawn(async move {
                                    let mut own = Vec::with_capacity(per_caller as usize);
                                    for _ in 0..per_caller {
                                        let i = next.fetch_add(1, Ordering::Relaxed);
                                        let t = Instant::now();
                                        op(i).await;
                                        own.push(t.elapsed().as_nanos() as u64);
                                    }
                                    latencies.lock().expect("not poisoned").extend(own);
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("a caller panicked");
                        }
                        // Per operation asked for, though each caller ran as many.
                        start
                            .elapsed()
                            .mul_f64(iters as f64 / (per_caller * callers as u64) as f64)
                    })
                });
            });
        let mut all = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
        all.sort_unstable();
        if let Some(row) = self.rows.last_mut().filter(|_| !all.is_empty()) {
            let at = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
            row["p50_ns"] = json!(at(0.50));
            row["p99_ns"] = json!(at(0.99));
        }
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

/// One operation of a concurrent row: called with a number unique to the call.
pub(crate) type Op = Arc<dyn Fn(usize) -> BoxFuture<'static, ()> + Send + Sync>;

/// The parameter of a row run by `callers` concurrent callers.
pub(crate) fn callers_label(callers: usize) -> String {
    if callers == 1 {
        "1 caller".to_owned()
    } else {
        format!("{callers} callers")
    }
}
