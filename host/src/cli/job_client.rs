//! `telemetry-server job submit|status|result|cancel|list`: the client of a running server's job
//! service (`/api/v1`, see docs/api/jobs.md). Uses the same request/response types as the server.
//! `--chart FILE` fetches a result as an SVG bar chart (`/jobs/{id}/result.svg`).
//!
//! Exit codes: 0 success (for `submit --wait`: the job succeeded); 1 the job failed or was
//! cancelled, or the request failed (the server's `{error, detail}` is printed); 2 usage errors.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::blocking::{multipart, Client, Response};
use telemetry_server::api::jobs::types::{
    ErrorBody, JobList, JobRecord, JobState, Manifest, ResultFormat, ScheduleResponse,
    SubmitResponse,
};

/// The job service subcommands (flattened into `job …`).
#[derive(clap::Subcommand)]
pub enum Command {
    /// Upload a job to a server: validated and compiled at once, queued, run over the stored data.
    Submit(SubmitArgs),
    /// Show a job's state, progress, cost report and error.
    Status(IdArgs),
    /// Print a finished job's result.
    Result(ResultArgs),
    /// Cancel a queued or running job.
    Cancel(IdArgs),
    /// List the jobs your token may see.
    List(ServerArgs),
}

/// Where the server is and how to authenticate.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Base URL of the server.
    #[arg(
        long,
        env = "TELEMETRY_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Bearer token (its SHA-256 must be in the server's `[[jobs.tokens]]`).
    #[arg(long, env = "TELEMETRY_TOKEN", hide_env_values = true)]
    token: String,
}

/// `job submit`.
#[derive(clap::Args)]
pub struct SubmitArgs {
    /// The job component (`.wasm`).
    job: PathBuf,
    /// The data filter: a JSON file in `telemetry_schema.json` format, or inline JSON. Dimensions
    /// are matched by `field_name` (any subset). Default: every partition.
    #[arg(long)]
    filter: Option<String>,
    /// Let the job succeed with an empty result when the filter selects no partition file.
    #[arg(long)]
    allow_empty: bool,
    /// Read every partition file as JSON, without the server's column cache.
    #[arg(long)]
    no_column_cache: bool,
    /// The job parameter string.
    #[arg(long)]
    param: Option<String>,
    /// A name for the job (default: the file name).
    #[arg(long)]
    name: Option<String>,
    /// Worker threads wanted (the server caps it).
    #[arg(long)]
    workers: Option<usize>,
    /// A JSON file with per-job limits (missing fields take the server defaults).
    #[arg(long)]
    limits: Option<PathBuf>,
    /// Skip records the guest traps on instead of failing the job.
    #[arg(long)]
    skip_bad_records: bool,
    /// Read only this fraction of the records (e.g. 0.01), chosen by a stable hash of the
    /// document id: the same records on every run.
    #[arg(long, value_parser = super::job::parse_sample)]
    sample: Option<telemetry_server::jobs::Sample>,
    /// Read this configured source (`[jobs.sources.NAME]` on the server) instead of its local storage.
    #[arg(long)]
    source: Option<String>,
    /// On a cluster, over a local source: if a member holding matching files is lost, re-run on
    /// the survivors and succeed with a result marked partial instead of failing.
    #[arg(long)]
    allow_partial: bool,
    /// Also write the result to this configured output (`[jobs.outputs.NAME]` on the server, an
    /// S3 bucket/prefix) after the job succeeds; with --schedule, after every run.
    #[arg(long)]
    output: Option<String>,
    /// Run the job on this schedule instead of once: `daily HH:MM` or 5-field cron, UTC (the
    /// filter may use relative dates such as `-1d`). Prints the schedule id.
    #[arg(long, value_name = "SPEC", conflicts_with = "wait")]
    schedule: Option<String>,
    /// Wait for the job with a progress bar and print its result.
    #[arg(long)]
    wait: bool,
    /// With --wait: also draw the result as an SVG bar chart into this file (values must be numbers).
    #[arg(long, requires = "wait")]
    chart: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Commands that name one job.
#[derive(clap::Args)]
pub struct IdArgs {
    /// The job id printed by `job submit`.
    id: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// `job result`.
#[derive(clap::Args)]
pub struct ResultArgs {
    /// The job id.
    id: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: FormatArg,
    /// Write to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write the result as an SVG bar chart to this file instead (values must be numbers).
    #[arg(long, conflicts_with_all = ["format", "output"])]
    chart: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Text,
    Ndjson,
    Csv,
    /// A Parquet file with `key` and `value` columns (made here from the text result).
    Parquet,
}

impl From<FormatArg> for ResultFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Text | FormatArg::Parquet => ResultFormat::Text,
            FormatArg::Ndjson => ResultFormat::Ndjson,
            FormatArg::Csv => ResultFormat::Csv,
        }
    }
}

/// Fetches the text result and writes it to `out` as Parquet (`docs/parquet.md`).
fn result_parquet(client: &JobClient, id: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut text = Vec::new();
    client.result_to(id, ResultFormat::Text, &mut text)?;
    let mut bytes = Vec::new();
    telemetry_server::columns::result_to_parquet(&text, &mut bytes)
        .context("writing the result as Parquet")?;
    out.write_all(&bytes)?;
    Ok(())
}

/// Runs one job service subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Submit(args) => submit(args),
        Command::Status(args) => {
            let job = JobClient::new(&args.server)?.status(&args.id)?;
            println!("{}", serde_json::to_string_pretty(&job)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Result(args) => {
            let client = JobClient::new(&args.server)?;
            if let Some(path) = &args.chart {
                write_chart(path, &client.chart(&args.id)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let format = args.format.into();
            let parquet = matches!(args.format, FormatArg::Parquet);
            let write = |out: &mut dyn Write| match parquet {
                true => result_parquet(&client, &args.id, out),
                false => client.result_to(&args.id, format, out),
            };
            match &args.output {
                Some(path) => {
                    let mut file = std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    write(&mut file).with_context(|| format!("cannot write {}", path.display()))?;
                }
                None => stream_stdout(write)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel(args) => {
            let job = JobClient::new(&args.server)?.cancel(&args.id)?;
            eprintln!(
                "job {}: cancellation requested (state {})",
                job.id,
                job.state.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::List(server) => {
            let list = JobClient::new(&server)?.list()?;
            println!(
                "{:<36}  {:<9}  {:<12}  {:<24}  NAME",
                "ID", "STATE", "OWNER", "SUBMITTED"
            );
            for job in list.jobs {
                println!(
                    "{:<36}  {:<9}  {:<12}  {:<24}  {}",
                    job.id,
                    job.state.as_str(),
                    job.owner,
                    job.submitted_at,
                    job.manifest.name
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = JobClient::new(&args.server)?;
    let component =
        std::fs::read(&args.job).with_context(|| format!("cannot read {}", args.job.display()))?;
    let manifest = Manifest {
        name: args.name.clone().unwrap_or_else(|| {
            args.job
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "job".into())
        }),
        filter: args
            .filter
            .as_deref()
            .map(|f| read_json_arg(f, "--filter"))
            .transpose()?,
        allow_empty: args.allow_empty,
        column_cache: args.no_column_cache.then_some(false),
        parameter: args.param.clone(),
        limits: args
            .limits
            .as_deref()
            .map(|p| read_json_arg(&p.to_string_lossy(), "--limits"))
            .transpose()?,
        workers: args.workers,
        skip_bad_records: args.skip_bad_records,
        sample: args.sample.map(|s| s.fraction()),
        component: None,
        source: args.source.clone(),
        allow_partial: args.allow_partial,
        output: args.output.clone(),
        schedule: args.schedule.clone(),
        ..Manifest::default()
    };
    if args.schedule.is_some() {
        let created: ScheduleResponse = client.submit(component, &manifest)?;
        println!("{}", created.id);
        eprintln!(
            "schedule {} ({}): next run {}",
            created.id,
            created.schedule,
            created.next_run.as_deref().unwrap_or("never")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let submitted: SubmitResponse = client.submit(component, &manifest)?;
    if !args.wait {
        println!("{}", submitted.id);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("job {} queued", submitted.id);
    let job = client.wait(&submitted.id)?;
    match job.state {
        JobState::Succeeded => {
            stream_stdout(|out| client.result_to(&job.id, ResultFormat::Text, out))?;
            if let Some(path) = &args.chart {
                write_chart(path, &client.chart(&job.id)?)?;
            }
            eprintln!(
                "job {} succeeded in {:.2} s (upload to result)",
                job.id,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        state => {
            eprintln!(
                "job {} {}: {}",
                job.id,
                state.as_str(),
                job.error.as_deref().unwrap_or("no reason given")
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Parses a flag that is either inline JSON or a path to a JSON file.
pub(super) fn read_json_arg(value: &str, flag: &str) -> anyhow::Result<serde_json::Value> {
    let text = if value.trim_start().starts_with('{') {
        value.to_string()
    } else {
        std::fs::read_to_string(value).with_context(|| format!("{flag}: cannot read '{value}'"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{flag}: '{value}' is not valid JSON"))
}

/// Writes a chart and says where (stderr, so stdout stays the result).
pub(super) fn write_chart(path: &std::path::Path, svg: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, svg).with_context(|| format!("cannot write chart {}", path.display()))?;
    eprintln!("chart written to {}", path.display());
    Ok(())
}

/// Streams a download to stdout; a closed pipe (`| head`) ends it quietly.
fn stream_stdout(
    download: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let result = download(&mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        other => other.context("cannot write the result to stdout"),
    }
}

/// A blocking client of `/api/v1`.
struct JobClient {
    http: Client,
    base: String,
    token: String,
}

impl JobClient {
    fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let http = Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .context("cannot build HTTP client")?;
        Ok(JobClient {
            http,
            base: format!("{}/api/v1", args.server.trim_end_matches('/')),
            token: args.token.clone(),
        })
    }

    /// `POST /jobs`: a [`SubmitResponse`], or a [`ScheduleResponse`] for a manifest with a schedule.
    fn submit<T: serde::de::DeserializeOwned>(
        &self,
        component: Vec<u8>,
        manifest: &Manifest,
    ) -> anyhow::Result<T> {
        let form = multipart::Form::new()
            .part(
                "manifest",
                multipart::Part::text(serde_json::to_string(manifest)?)
                    .mime_str("application/json")?,
            )
            .part(
                "component",
                multipart::Part::bytes(component)
                    .file_name("job.wasm")
                    .mime_str("application/wasm")?,
            );
        let response = self
            .http
            .post(format!("{}/jobs", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send();
        Ok(checked(response, "submit")?.json()?)
    }

    fn status(&self, id: &str) -> anyhow::Result<JobRecord> {
        let response = self
            .http
            .get(format!("{}/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send();
        Ok(checked(response, "status")?.json()?)
    }

    /// Streams the result into `out` as it arrives (never held whole).
    fn result_to(&self, id: &str, format: ResultFormat, out: &mut dyn Write) -> anyhow::Result<()> {
        let format = serde_json::to_value(format)?;
        let response = self
            .http
            .get(format!("{}/jobs/{id}/result", self.base))
            .query(&[("format", format.as_str().unwrap_or("text"))])
            .bearer_auth(&self.token)
            .send();
        checked(response, "result")?.copy_to(out)?;
        Ok(())
    }

    /// The result as an SVG bar chart (`400 not_chartable` when a value is not a number).
    fn chart(&self, id: &str) -> anyhow::Result<Vec<u8>> {
        let response = self
            .http
            .get(format!("{}/jobs/{id}/result.svg", self.base))
            .bearer_auth(&self.token)
            .send();
        Ok(checked(response, "chart")?.bytes()?.to_vec())
    }

    fn cancel(&self, id: &str) -> anyhow::Result<JobRecord> {
        let response = self
            .http
            .delete(format!("{}/jobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send();
        Ok(checked(response, "cancel")?.json()?)
    }

    fn list(&self) -> anyhow::Result<JobList> {
        let response = self
            .http
            .get(format!("{}/jobs", self.base))
            .bearer_auth(&self.token)
            .send();
        Ok(checked(response, "list")?.json()?)
    }

    /// Polls the job until it is final, drawing a progress bar of files (and records) done.
    fn wait(&self, id: &str) -> anyhow::Result<JobRecord> {
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
            )
            .expect("valid template"),
        );
        let mut poll = Duration::from_millis(20);
        loop {
            let job = self.status(id)?;
            bar.set_length(job.progress.files_total);
            bar.set_position(job.progress.files_done);
            bar.set_message(format!(
                "{} · {} records · {:.1} MB",
                job.state.as_str(),
                job.progress.records,
                job.progress.bytes as f64 / 1e6
            ));
            if job.state.is_final() {
                bar.finish_and_clear();
                return Ok(job);
            }
            std::thread::sleep(poll);
            poll = (poll * 2).min(Duration::from_millis(250));
        }
    }
}

/// Turns transport errors and non-2xx answers into one error naming the server's `{error, detail}`.
fn checked(response: reqwest::Result<Response>, what: &str) -> anyhow::Result<Response> {
    let response = response.with_context(|| format!("{what}: cannot reach the server"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&body) {
        Ok(e) => bail!("{what}: server answered {status} {}: {}", e.error, e.detail),
        Err(_) => bail!("{what}: server answered {status}: {body}"),
    }
}
