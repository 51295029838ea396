//! The `rollcall` binary: parse configuration, set up logging, serve until SIGINT/SIGTERM.

// No `unwrap()` in the server's own code: an `expect` says why it cannot fail, or the case is
// handled. Scoped to src/ (here, not in Cargo.toml's [lints], which would reach the test and
// bench crates too); `#[cfg(test)]` code may unwrap (clippy.toml: allow-unwrap-in-tests).
#![warn(clippy::unwrap_used)]

use clap::Parser;
use rollcall::cli::{Cli, Command};
use rollcall::config::Settings;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rollcall: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(Command::Token {
        sub,
        plyr_id,
        game,
        video_room,
        team,
        user_id,
        name,
        ttl_secs,
    }) = &cli.command
    {
        let token = if let Some(sub) = sub {
            match &settings.jwt_secret {
                Some(secret) => Ok(rollcall::auth::sign_hs256(
                    secret,
                    sub,
                    name.as_deref(),
                    *ttl_secs,
                )),
                None => Err(
                    "no jwt_secret is configured: set ROLLCALL_JWT_SECRET (or run \
                             with nothing configured, in development mode)"
                        .into(),
                ),
            }
        } else if let Some(plyr_id) = plyr_id {
            if !settings.mode.is_dev() {
                eprintln!(
                    "rollcall: note: --plyr-id tokens are signed with the public development key \
                     pair, which only a server in development mode accepts"
                );
            }
            let game = game
                .clone()
                .or_else(|| settings.game.api_keys.first().map(|k| k.game_id.clone()))
                .unwrap_or_else(|| rollcall::facade::game::DEV_GAME_ID.into());
            rollcall::facade::game::session::sign_dev_session(plyr_id, &game, *ttl_secs)
        } else if let Some(room) = video_room {
            video_token(
                &settings,
                room,
                team.as_deref(),
                user_id.as_deref(),
                name.as_deref(),
                *ttl_secs,
            )
        } else {
            Err("give --sub, --plyr-id or --video-room".into()) // clap requires one
        };
        return match token {
            Ok(t) => {
                println!("{t}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rollcall: {e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    init_tracing(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rollcall: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rollcall: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A video room token signed with the team's developer key (from configuration, or the dev team).
fn video_token(
    settings: &Settings,
    room: &str,
    team: Option<&str>,
    user_id: Option<&str>,
    name: Option<&str>,
    ttl_secs: u64,
) -> Result<String, String> {
    use rollcall::facade::video::{DEV_DEVELOPER_KEY, DEV_TEAM_ID};
    let teams = &settings.video.teams;
    let (team_id, key) = match team {
        Some(t) if teams.is_empty() && t == DEV_TEAM_ID => {
            (DEV_TEAM_ID.to_owned(), DEV_DEVELOPER_KEY.to_owned())
        }
        Some(t) => match teams.iter().find(|x| x.team_id == t) {
            Some(x) => (x.team_id.clone(), x.developer_key.clone()),
            None => return Err(format!("no video team {t:?} in the configuration")),
        },
        None => match teams.first() {
            Some(x) => (x.team_id.clone(), x.developer_key.clone()),
            None => (DEV_TEAM_ID.to_owned(), DEV_DEVELOPER_KEY.to_owned()),
        },
    };
    let now = rollcall::auth::unix_now();
    let mut claims =
        serde_json::json!({"td": team_id, "rd": room, "iat": now, "exp": now + ttl_secs});
    if let Some(u) = user_id {
        claims["ud"] = u.into();
    }
    if let Some(n) = name {
        claims["u"] = n.into();
    }
    rollcall::facade::video::token::sign(&key, &claims).map_err(|e| format!("signing: {e}"))
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(settings: Settings) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let fd_limit = rollcall::listener::raise_fd_limit();
    let cap = rollcall::listener::capacity(settings.max_connections, fd_limit);
    let tcp = rollcall::listener::bind(settings.listen)?;
    let addr = tcp.local_addr()?;
    announce_credentials(&settings);
    tracing::info!(
        open_file_limit = fd_limit,
        socket_capacity = cap,
        "file descriptors"
    );
    let app = rollcall::app::App::new(settings)?;
    app.join_cluster(addr).await?;
    tracing::info!(%addr, "rollcall listening: ws://{addr}/v1/ws (make a token: rollcall token --sub alice)");
    rollcall::server::serve(
        rollcall::listener::Listener::new(tcp, cap, app.stats.clone()),
        app,
        rollcall::server::signals(),
    )
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Says at start which credentials authenticate: in development mode one warning listing every
/// live development credential by what it opens (never a value); in production, which surfaces
/// refuse everyone because their credential is not configured.
fn announce_credentials(settings: &Settings) {
    if settings.mode.is_dev() {
        tracing::warn!(
            "DEVELOPMENT MODE: these public development credentials are live: {}; configure any \
             real credential (ROLLCALL_JWT_SECRET, ...) for production mode, where none of them is",
            rollcall::devmode::DEV_CREDENTIALS.join("; ")
        );
        return;
    }
    tracing::info!("production mode: only configured credentials authenticate");
    if settings.jwt_secret.is_none() && settings.jwt_keys.is_empty() {
        tracing::warn!("no jwt_secret or jwt_keys configured: native socket tokens never verify");
    }
    if settings.admin_token.is_none() {
        tracing::warn!("no admin_token configured: the operator REST API refuses every caller");
    }
}
