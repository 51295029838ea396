//! Results: a summary table on stdout, `--json FILE`, and an SVG latency histogram.
//!
//! Every report carries the date, the command, the server mode and the load average before and
//! after, so a figure copied into `bench/RESULTS.md` keeps its context. Warnings (the load
//! generator was the bottleneck, anomalies were counted) are printed last and never hidden.

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::procstat::{loadavg, CpuUse};
use super::Error;

/// The results of one run.
pub struct Report {
    scenario: &'static str,
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
    hist: Option<(String, Histogram<u64>)>,
    warnings: Vec<String>,
    load_start: String,
    date: String,
}

fn fmt_value(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Report {
    /// A report for `scenario`, noting the load average now.
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            rows: Vec::new(),
            json: Map::new(),
            hist: None,
            warnings: Vec::new(),
            load_start: loadavg(),
            date: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// A figure: `key` in the JSON, `label` in the table.
    pub fn add(&mut self, key: &str, label: &str, value: impl Into<Value>) {
        let value = value.into();
        self.rows.push((label.to_owned(), fmt_value(&value)));
        self.json.insert(key.to_owned(), value);
    }

    /// A latency distribution (µs in the histogram): p50/p90/p99/p99.9/max in ms.
    pub fn latency(&mut self, key: &str, label: &str, h: &Histogram<u64>) {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let mut o = Map::new();
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            o.insert(format!("{name}_ms"), json!(ms(q)));
        }
        o.insert("max_ms".into(), json!(h.max() as f64 / 1000.0));
        o.insert("mean_ms".into(), json!(h.mean() / 1000.0));
        o.insert("samples".into(), json!(h.len()));
        self.rows.push((
            format!("{label} (ms)"),
            format!(
                "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (n={})",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(0.999),
                h.max() as f64 / 1000.0,
                h.len()
            ),
        ));
        self.json.insert(key.to_owned(), Value::Object(o));
    }

    /// Keeps `h` for the SVG picture.
    pub fn picture(&mut self, title: &str, h: &Histogram<u64>) {
        self.hist = Some((title.to_owned(), h.clone()));
    }

    /// CPU of the load generator next to the server's, with the bottleneck warning.
    pub fn cpu(&mut self, mode: &str, u: &CpuUse) {
        self.add("server_mode", "server", mode);
        self.add("wall_secs", "wall time (s)", u.wall);
        self.add("bench_cpu_secs", "load generator CPU (s)", u.bench);
        match u.server {
            Some(s) => {
                self.add("server_cpu_secs", "server CPU (s)", s);
                if u.bench > s && u.bench > 0.1 {
                    self.warn(format!(
                        "the load generator used more CPU ({:.2} s) than the server ({s:.2} s): it is \
                         likely the bottleneck, so these figures understate the server",
                        u.bench
                    ));
                }
            }
            None => {
                self.add("server_cpu_secs", "server CPU (s)", Value::Null);
                self.warn(
                    "server CPU not measured apart (in-process or no --server-pid): the CPU figure \
                     above is client and server together; use --spawn to separate them"
                        .into(),
                );
            }
        }
    }

    /// The server's store commits (`rollcall_store_commits_total`) between `before` and `after`,
    /// and per answered request: below 1 when group commit covers several requests in one
    /// transaction. Background commits (presence checkpoints) in that window count too. `null`
    /// when the server exposes no such counter (a build before the durable store).
    pub fn store_commits(&mut self, before: Option<u64>, after: Option<u64>, answered: u64) {
        match (before, after) {
            (Some(b), Some(a)) => {
                let n = a.saturating_sub(b);
                self.add("store_commits", "store commits during the calls", n);
                self.add(
                    "commits_per_request",
                    "store commits per answered request",
                    if answered > 0 {
                        n as f64 / answered as f64
                    } else {
                        0.0
                    },
                );
            }
            _ => {
                self.add(
                    "store_commits",
                    "store commits during the calls",
                    Value::Null,
                );
                self.add(
                    "commits_per_request",
                    "store commits per answered request",
                    Value::Null,
                );
            }
        }
    }

    /// A figure recorded under `key`, as it will appear in the JSON.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.json.get(key)
    }

    /// A warning printed under the table.
    pub fn warn(&mut self, w: String) {
        self.warnings.push(w);
    }

    /// Counts anomalies: each nonzero one becomes a warning.
    pub fn must_be_zero(&mut self, key: &str, label: &str, n: u64) {
        self.add(key, label, n);
        if n > 0 {
            self.warn(format!("{label}: {n} (expected 0)"));
        }
    }

    /// The stream anomalies every scenario reports, each expected to be 0: version gaps,
    /// duplicates and out-of-order events.
    pub fn stream_anomalies(&mut self, c: &crate::stats::Counters) {
        use crate::stats::Counters as C;
        self.must_be_zero(
            "missing_events",
            "missing events (version gaps)",
            C::get(&c.gaps),
        );
        self.must_be_zero("duplicates", "duplicate events", C::get(&c.duplicates));
        self.must_be_zero(
            "out_of_order",
            "out-of-order events",
            C::get(&c.out_of_order),
        );
    }

    /// Prints the table, writes `--json` and `--svg`.
    pub fn finish(
        mut self,
        command: &str,
        json_path: Option<&Path>,
        svg: Option<&Path>,
    ) -> Result<(), Error> {
        let load_end = loadavg();
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(10);
        let mut out = String::new();
        let _ = writeln!(out, "\n== rollcall-bench {} ==", self.scenario);
        let _ = writeln!(out, "{:width$}  {}", "date", self.date);
        let _ = writeln!(out, "{:width$}  {command}", "command");
        let _ = writeln!(
            out,
            "{:width$}  {} -> {}",
            "load average", self.load_start, load_end
        );
        for (l, v) in &self.rows {
            let _ = writeln!(out, "{l:width$}  {v}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "WARNING: {w}");
        }
        print!("{out}");
        if let Some(p) = json_path {
            self.json.insert("scenario".into(), json!(self.scenario));
            self.json.insert("date".into(), json!(self.date));
            self.json.insert("command".into(), json!(command));
            self.json
                .insert("load_before".into(), json!(self.load_start));
            self.json.insert("load_after".into(), json!(load_end));
            self.json.insert("warnings".into(), json!(self.warnings));
            std::fs::write(p, serde_json::to_vec_pretty(&Value::Object(self.json))?)?;
            eprintln!("wrote {}", p.display());
        }
        if let (Some(p), Some((title, h))) = (svg, &self.hist) {
            std::fs::write(p, svg_histogram(title, h))?;
            eprintln!("wrote {}", p.display());
        }
        Ok(())
    }
}

/// A bar chart of `h` (µs) over 0 .. p99.9 × 1.25, the last bar holding everything above.
pub fn svg_histogram(title: &str, h: &Histogram<u64>) -> String {
    const BINS: usize = 60;
    let (w, ht, left, bottom, top) = (900.0, 420.0, 70.0, 50.0, 40.0);
    let span = ((h.value_at_quantile(0.999) as f64) * 1.25).max(10.0);
    let bin_w = span / BINS as f64;
    let mut bins = [0u64; BINS];
    for v in h.iter_recorded() {
        let i = ((v.value_iterated_to() as f64 / bin_w) as usize).min(BINS - 1);
        bins[i] += v.count_at_value();
    }
    let peak = bins.iter().copied().max().unwrap_or(1).max(1) as f64;
    let plot_w = w - left - 20.0;
    let plot_h = ht - top - bottom;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    let bw = plot_w / BINS as f64;
    for (i, c) in bins.iter().enumerate() {
        let bh = plot_h * (*c as f64) / peak;
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{:.3}–{:.3} ms: {c}</title></rect>",
            left + i as f64 * bw,
            top + plot_h - bh,
            (bw - 1.0).max(1.0),
            if i == BINS - 1 { "#c0392b" } else { "#2e86c1" },
            i as f64 * bin_w / 1000.0,
            (i + 1) as f64 * bin_w / 1000.0,
        );
    }
    let axis_y = top + plot_h;
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"black\"/>",
        left + plot_w
    );
    for k in 0..=5 {
        let x = left + plot_w * k as f64 / 5.0;
        let _ = writeln!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.2}</text>",
            axis_y + 16.0,
            span * k as f64 / 5.0 / 1000.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">latency (ms); last bar: everything above</text>",
        left + plot_w / 2.0,
        axis_y + 34.0
    );
    let _ = writeln!(
        s,
        "<text x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\" text-anchor=\"middle\">samples (peak {peak})</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    for (name, q, color) in [("p50", 0.5, "#27ae60"), ("p99", 0.99, "#e67e22")] {
        let v = h.value_at_quantile(q) as f64;
        let x = left + plot_w * (v / span).min(1.0);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{axis_y}\" stroke=\"{color}\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{name} {:.3} ms</text>",
            x + 3.0,
            top + 12.0 + if name == "p99" { 14.0 } else { 0.0 },
            v / 1000.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">n = {}, max {:.3} ms</text>",
        left + plot_w,
        top + 12.0,
        h.len(),
        h.max() as f64 / 1000.0
    );
    s.push_str("</svg>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
