//! The `ferry` command: serve, migrate, and the console's admin commands.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use ferry::config::Settings;
use ferry::network::{
    DeviceKind, NewDevice, NewSite, NewUser, Role, SiteId, SiteKind, Specialty, Tier, UserId,
};
use ferry::server::Application;
use ferry::state::Stores;
use ferry::{demo, logging, operator};

#[derive(Parser)]
#[command(name = "ferry", version, about = "Telemedicine collaboration network server")]
struct Cli {
    /// Settings file (TOML) applied over the built-in defaults; FERRY__SECTION__KEY
    /// environment variables apply over both.
    #[arg(long, global = true, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Sites of the network.
    #[command(subcommand)]
    Site(SiteCmd),
    /// People and their roles.
    #[command(subcommand)]
    User(UserCmd),
    /// Devices (modalities, ECG carts, upload clients).
    #[command(subcommand)]
    Device(DeviceCmd),
    /// API bearer tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Routing rules of reading centres: which sites' imaging or ECGs each centre reads.
    #[command(subcommand)]
    Routing(RoutingCmd),
    /// Send DICOM files (or folders of them) to a Ferry server, resumably: run the same
    /// command again after an interruption and it continues where it stopped.
    Upload(UploadArgs),
    /// Load tests that print figures.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum BenchCmd {
    /// A reading centre's worklist: list times over many open requests, and a signed report
    /// reaching the clinic's connected clinicians.
    Reading {
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        #[arg(long, default_value_t = 50)]
        sites: usize,
        #[arg(long, default_value_t = 200)]
        sockets: usize,
        /// Lists timed per kind of list.
        #[arg(long, default_value_t = 300)]
        lists: usize,
    },
    /// Training broadcasts: one presenter looping a pre-encoded clip, receive-only viewers in
    /// climbing steps, through Ferry's SFU and (with --janus) Janus's VideoRoom alike.
    Broadcast {
        /// Viewer counts to measure at, comma-separated, climbing.
        #[arg(long, default_value = "25,50,100,150,200,300,400", value_delimiter = ',')]
        steps: Vec<usize>,
        /// Seconds measured at each step.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Folder with clip.ivf (VP8) and clip.ogg (Opus).
        #[arg(long)]
        clip_dir: PathBuf,
        /// Janus's HTTP API, e.g. http://127.0.0.1:8088/janus.
        #[arg(long)]
        janus: Option<String>,
        /// Janus's process id (its CPU time and memory are read from /proc).
        #[arg(long)]
        janus_pid: Option<u32>,
        /// Threads that drive the viewers.
        #[arg(long, default_value_t = 1)]
        swarm_threads: usize,
        /// The address the presenter's and viewers' sockets bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind_ip: std::net::IpAddr,
    },
    /// The signalling WebSocket: N clients in N/2 call rooms negotiating at a steady rate.
    Signal {
        /// Clients (even): half callers, half specialists.
        #[arg(long, default_value_t = 5000)]
        clients: usize,
        /// Seconds of negotiation after everyone has joined.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Seconds between one pair's negotiations (offer, answer, 8 candidates).
        #[arg(long, default_value_t = 5.0)]
        interval_secs: f64,
    },
}

#[derive(Args)]
struct UploadArgs {
    /// Files or folders (searched recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A bearer token (`ferry token create`), or the FERRY_TOKEN environment variable.
    #[arg(long, env = "FERRY_TOKEN", hide_env_values = true)]
    token: String,
    /// Most bytes per second to send (a thin shared link): plain bytes or with K/M suffix.
    #[arg(long, value_parser = parse_rate)]
    limit_rate: Option<u64>,
    /// Bytes per request, in KiB.
    #[arg(long, default_value_t = 1024)]
    chunk_kib: usize,
    /// How long to keep trying while the server cannot be reached, counted from the last
    /// byte that got through (e.g. 90m, 2h, 600s).
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    retry_for: std::time::Duration,
    /// Where unfinished uploads are remembered.
    #[arg(long, default_value = ".ferry-upload-state.json")]
    state: PathBuf,
    /// Keep watching the folders and send each new file once it has stopped changing (an ECG
    /// cart's or a modality's export folder); remembers what was sent across restarts.
    #[arg(long)]
    watch: bool,
    /// With --watch: a file is sent once its size and time have not changed for this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration, requires = "watch")]
    settle: std::time::Duration,
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1024),
        Some('m' | 'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("`{s}` is not a rate like 512K or 2M"))
}

#[derive(Args)]
struct ServeArgs {
    /// Seed the demo network (idempotent) and print its logins.
    #[arg(long)]
    demo: bool,
    /// Password of the demo users.
    #[arg(long, default_value = demo::DEFAULT_PASSWORD, requires = "demo")]
    demo_password: String,
}

#[derive(Subcommand)]
enum SiteCmd {
    /// Add a site.
    Add {
        #[arg(long)]
        id: SiteId,
        #[arg(long)]
        name: String,
        #[arg(long)]
        tier: Tier,
        #[arg(long)]
        kind: SiteKind,
        #[arg(long)]
        parent: Option<SiteId>,
    },
    /// List sites.
    List,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user. With --password-stdin the first line of standard input is the password.
    Add {
        #[arg(long)]
        id: UserId,
        #[arg(long)]
        site: SiteId,
        #[arg(long)]
        name: String,
        /// Repeat for several roles.
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        #[arg(long = "specialty")]
        specialties: Vec<Specialty>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users of a site.
    List {
        #[arg(long)]
        site: SiteId,
    },
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Register a device with a site.
    Add {
        #[arg(long)]
        site: SiteId,
        #[arg(long, default_value = "modality")]
        kind: DeviceKind,
        #[arg(long)]
        name: Option<String>,
        /// DICOM AE title the device calls with.
        #[arg(long)]
        ae: Option<String>,
    },
    /// List the devices of a site.
    List {
        #[arg(long)]
        site: SiteId,
    },
}

#[derive(Subcommand)]
enum RoutingCmd {
    /// Route a site's (with --subtree: and every site below it) imaging or ECGs to a centre.
    Add {
        /// The reading centre's site.
        #[arg(long)]
        centre: SiteId,
        /// The sending site.
        #[arg(long)]
        from: SiteId,
        #[arg(long)]
        subtree: bool,
        /// imaging or ecg
        #[arg(long)]
        kind: ferry::reading::Kind,
        /// Imaging only: these modalities (e.g. CT,MR); default all.
        #[arg(long, value_delimiter = ',')]
        modality: Vec<String>,
        /// routine, urgent or stat
        #[arg(long, default_value = "routine")]
        priority: ferry::reading::Priority,
    },
    /// A centre's rules.
    List {
        #[arg(long)]
        centre: SiteId,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a bearer token for a user, or for a device (an ECG cart that exports files, by
    /// its id or AE title: it may then only send for its site), and print it (it is shown
    /// only this once).
    Create {
        #[arg(long, required_unless_present = "device", conflicts_with = "device")]
        user: Option<UserId>,
        #[arg(long)]
        device: Option<String>,
        #[arg(long, default_value = "created at the console")]
        label: String,
        /// Days until the token stops working (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token by its id (tok_… for a person's, dtk_… for a device's).
    Revoke { id: String },
    /// List a user's or a device's tokens.
    List {
        #[arg(long, required_unless_present = "device", conflicts_with = "device")]
        user: Option<UserId>,
        #[arg(long)]
        device: Option<String>,
    },
}

/// `90s`, `15m`, `2h` or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = n.parse().map_err(|_| format!("not a duration: {s} (e.g. 90s, 15m, 2h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("not a duration: {s} (e.g. 90s, 15m, 2h)")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferry: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    logging::init(&settings.log);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(settings, args).await,
        Command::Bench(BenchCmd::Reading { requests, sites, sockets, lists }) => {
            ferry::bench::reading::run(ferry::bench::reading::ReadingBench {
                requests,
                sites,
                sockets,
                lists,
            })
            .await
        }
        Command::Bench(BenchCmd::Broadcast {
            steps,
            seconds,
            clip_dir,
            janus,
            janus_pid,
            swarm_threads,
            bind_ip,
        }) => {
            ferry::bench::broadcast::run(ferry::bench::broadcast::BroadcastBench {
                steps,
                seconds,
                clip_dir,
                janus,
                janus_pid,
                swarm_threads,
                bind_ip,
            })
            .await
        }
        Command::Bench(BenchCmd::Signal { clients, seconds, interval_secs }) => {
            ferry::bench::run(ferry::bench::SignalBench { clients, seconds, interval_secs }).await
        }
        Command::Upload(args) => {
            let opts = ferry::upload::client::Options {
                server: args.server,
                token: args.token,
                chunk_bytes: args.chunk_kib.max(1) * 1024,
                limit_rate: args.limit_rate,
                state_file: args.state,
                retry_for: args.retry_for,
            };
            if args.watch {
                return ferry::upload::client::watch(&args.paths, &opts, args.settle).await;
            }
            let summary = ferry::upload::client::run(&args.paths, &opts).await?;
            println!(
                "{} instance(s) stored{}, {} refused",
                summary.stored,
                if summary.resumed > 0 {
                    format!(" ({} resumed)", summary.resumed)
                } else {
                    String::new()
                },
                summary.failed.len()
            );
            for (path, why) in &summary.failed {
                println!("  refused: {}: {why}", path.display());
            }
            println!("bytes sent again after interruptions: {}", summary.resent_bytes);
            anyhow::ensure!(summary.failed.is_empty(), "some files were refused");
            Ok(())
        }
        Command::Migrate => {
            let db = ferry::storage::Db::connect(settings.database_target(), 1).await?;
            let n = db.migrate().await?;
            println!("{n} migration(s) applied; the {} schema is current", db.backend().name());
            Ok(())
        }
        Command::Site(cmd) => {
            let state = Stores::open(settings).await?;
            match cmd {
                SiteCmd::Add { id, name, tier, kind, parent } => {
                    let s = operator::add_site(&state, NewSite { id, name, tier, kind, parent })
                        .await?;
                    println!("site {} added", s.id);
                }
                SiteCmd::List => {
                    for s in operator::list_sites(&state).await? {
                        let parent = s.parent.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                        println!(
                            "{:<20} {:<9} {:<15} parent={:<20} {}",
                            s.id, s.tier, s.kind, parent, s.name
                        );
                    }
                }
            }
            Ok(())
        }
        Command::User(cmd) => {
            let state = Stores::open(settings).await?;
            match cmd {
                UserCmd::Add { id, site, name, roles, specialties, password_stdin } => {
                    let password = if password_stdin {
                        let mut line = String::new();
                        std::io::stdin()
                            .lock()
                            .read_line(&mut line)
                            .context("reading the password")?;
                        Some(line.trim_end_matches(['\r', '\n']).to_string())
                    } else {
                        None
                    };
                    let u = operator::add_user(
                        &state,
                        &site,
                        NewUser { id, display_name: name, roles, specialties, password },
                    )
                    .await?;
                    println!("user {} added to {}", u.id, u.site);
                }
                UserCmd::List { site } => {
                    for u in operator::list_users(&state, &site).await? {
                        let roles: Vec<_> = u.roles.iter().map(|r| r.as_str()).collect();
                        println!(
                            "{:<20} {:<30} {}{}",
                            u.id,
                            roles.join(","),
                            u.display_name,
                            if u.disabled { " (disabled)" } else { "" }
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Device(cmd) => {
            let state = Stores::open(settings).await?;
            match cmd {
                DeviceCmd::Add { site, kind, name, ae } => {
                    let ae_title = ae.map(|a| a.parse()).transpose()?;
                    let name = name
                        .or_else(|| {
                            ae_title
                                .as_ref()
                                .map(|a: &ferry::network::AeTitle| a.as_str().to_string())
                        })
                        .context("give --name or --ae")?;
                    let d = operator::add_device(&state, &site, NewDevice { kind, name, ae_title })
                        .await?;
                    println!("device {} added to {}", d.id, d.site);
                }
                DeviceCmd::List { site } => {
                    for d in operator::list_devices(&state, &site).await? {
                        let ae = d.ae_title.map(|a| a.as_str().to_string()).unwrap_or_default();
                        println!("{:<18} {:<9} {:<17} {}", d.id, d.kind, ae, d.name);
                    }
                }
            }
            Ok(())
        }
        Command::Routing(cmd) => {
            let state = Stores::open(settings).await?;
            match cmd {
                RoutingCmd::Add { centre, from, subtree, kind, modality, priority } => {
                    let new = ferry::reading::store::NewRule {
                        from_site: from,
                        subtree,
                        kind,
                        modalities: modality,
                        priority,
                    };
                    let r = operator::add_routing_rule(&state, &centre, new).await?;
                    println!(
                        "routing rule {} added: {} {} from {} to {}",
                        r.id, r.priority, r.kind, r.from_site, r.centre_site
                    );
                }
                RoutingCmd::List { centre } => {
                    for r in operator::routing_rules(&state, &centre).await? {
                        let scope = if r.subtree { " and below" } else { "" };
                        let mods = if r.modalities.is_empty() {
                            "all".into()
                        } else {
                            r.modalities.join(",")
                        };
                        println!(
                            "{:<14} {:<8} {:<8} from {}{scope} (modalities: {mods})",
                            r.id, r.kind, r.priority, r.from_site
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Token(cmd) => {
            let state = Stores::open(settings).await?;
            match cmd {
                TokenCmd::Create { user, device, label, expires_in_days } => {
                    let (id, holder, expires, secret) = match (user, device) {
                        (Some(user), _) => {
                            let (t, secret) =
                                operator::create_token(&state, &user, &label, expires_in_days)
                                    .await?;
                            (t.id, t.user, t.expires_at, secret)
                        }
                        (None, Some(device)) => {
                            let (t, secret) = operator::create_device_token(
                                &state,
                                &device,
                                &label,
                                expires_in_days,
                                None,
                            )
                            .await?;
                            (t.id, format!("device {}", t.device), t.expires_at, secret)
                        }
                        (None, None) => anyhow::bail!("give --user or --device"),
                    };
                    eprintln!(
                        "token {id} for {holder} created{}; it is shown only now:",
                        expires.map(|e| format!(", expires {e}")).unwrap_or_default()
                    );
                    println!("{secret}");
                }
                TokenCmd::Revoke { id } => {
                    let revoked_at = if ferry::auth::tokens::is_device_token_id(&id) {
                        operator::revoke_device_token(&state, &id).await?.revoked_at
                    } else {
                        operator::revoke_token(&state, &id).await?.revoked_at
                    };
                    println!("token {id} revoked at {}", revoked_at.unwrap_or_default());
                }
                TokenCmd::List { user, device } => {
                    let rows: Vec<_> = match (user, device) {
                        (Some(user), _) => operator::list_tokens(&state, &user)
                            .await?
                            .into_iter()
                            .map(|t| (t.id, t.revoked_at, t.created_at, t.expires_at, t.label))
                            .collect(),
                        (None, Some(device)) => operator::list_device_tokens(&state, &device)
                            .await?
                            .into_iter()
                            .map(|t| (t.id, t.revoked_at, t.created_at, t.expires_at, t.label))
                            .collect(),
                        (None, None) => anyhow::bail!("give --user or --device"),
                    };
                    for (id, revoked, created, expires, label) in rows {
                        let status = if revoked.is_some() { "revoked" } else { "active" };
                        println!(
                            "{id:<16} {status:<8} created={created} expires={} {label}",
                            expires.unwrap_or_else(|| "never".into()),
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

async fn serve(settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let state = app.state();
    let url = app.base_url();
    if args.demo {
        let created = demo::seed(&state.stores, &args.demo_password).await?
            + demo::seed_routing(&state.stores).await?;
        println!("Demo network ready ({created} record(s) created).");
        println!("Sign in at {url}/ as any of (password: {}):", args.demo_password);
        for (id, name, site, roles, _) in demo::USERS {
            let roles: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            println!("  {id:<12} {:<11} {site:<16} {name}", roles.join(","));
        }
        println!(
            "The island clinic's ECG cart ({}) sends with its device token {}",
            demo::CART_AE,
            demo::cart_token(&args.demo_password)
        );
        println!(
            "  e.g. ferry upload --server {url} --token {} --watch CART-EXPORT-FOLDER",
            demo::cart_token(&args.demo_password)
        );
    }
    if let Some(dimse) = app.dimse_addr() {
        let ae = &state.settings.dimse.ae_title;
        println!("DICOM (C-ECHO, C-STORE) on {dimse}, AE title {ae}");
        if args.demo {
            println!(
                "  e.g. dcmsend -aet ISLANDCT -aec {ae} --scan-directories --recurse {} {} FOLDER",
                dimse.ip(),
                dimse.port()
            );
        }
    }
    println!(
        "Training broadcasts' media (WebRTC) on UDP {}; open it in the firewall",
        state.media.local_addr()
    );
    println!("Ferry listening on {url}");
    tracing::info!(%url, db = state.db.backend().name(), objects = state.objects.kind(), "listening");
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        token.cancel();
    });
    app.run().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
