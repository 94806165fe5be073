//! `tune top`: resolve the arguments, observe once as check does, then refresh every interval into the screen, one frame (`--once`) or the metrics endpoint (`--listen`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::{Context, Outcome};
use crate::cli::top::TopArgs;
use crate::kernel::Host;
use crate::knobs;
use crate::top::model::{State, View};
use crate::top::render::{self, Options};
use crate::top::sample::Sampler;
use crate::top::{http, metrics};

pub fn run(ctx: &Context, args: &TopArgs) -> anyhow::Result<Outcome> {
    // Phase 1: a screen to draw on, the root and the process are there.
    if !args.once && args.listen.is_none() && !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "tune top draws on a terminal and standard output is not one: \
             use --once for one frame as plain text, or --listen ADDR for Prometheus"
        );
    }
    let host = Host::new(&ctx.root);
    super::require_proc(ctx, &host, args.pid)?;
    // Phase 2: check's observation, once (the cost per socket, the facts).
    let obs = knobs::observe(&ctx.root, args.pid);
    // Phase 3: the sampler over the same root.
    let mut sampler = Sampler::new(host, &obs, args.pid, usize::from(args.processes));
    let opts = Options {
        color: ctx.color,
        interval: args.interval,
    };
    let interval = Duration::from_secs_f64(args.interval);
    // Phase 4: one of three loops.
    if args.once {
        once(&mut sampler, interval, &opts);
    } else if let Some(addr) = &args.listen {
        listen(&mut sampler, interval, addr)?;
    } else {
        live(&mut sampler, interval, &opts)?;
    }
    Ok(Outcome::Pass)
}

/// Two refreshes `interval` apart, printed as one frame of plain text.
fn once(sampler: &mut Sampler, interval: Duration, opts: &Options) {
    let width = super::check::terminal_width()
        .and_then(|w| u16::try_from(w).ok())
        .unwrap_or(render::MIN_WIDTH)
        .max(render::MIN_WIDTH);
    sampler.wait_for_ports = true;
    let mut state = State::default();
    state.push(sampler.sample());
    std::thread::sleep(interval);
    state.push(sampler.sample());
    let view = state.view(render::spark_cols(width));
    print!("{}", render::once(&view, width, opts));
}

/// Refreshes forever, publishing each view's metrics at ADDR/metrics.
fn listen(sampler: &mut Sampler, interval: Duration, addr: &str) -> anyhow::Result<()> {
    let endpoint = http::Endpoint::bind(addr)?;
    eprintln!(
        "tune top: serving the metrics at http://{}/metrics",
        endpoint.addr()
    );
    let cpu = embedded_server::sys::proc::thread_cpu_time;
    let mut state = State::default();
    let mut cost = metrics::Cost::default();
    let mut next = Instant::now();
    loop {
        let before = cpu();
        state.push(sampler.sample());
        let view = state.view(0);
        cost.refreshes += 1;
        if let (Some(b), Some(a)) = (before, cpu()) {
            let secs = a.saturating_sub(b).as_secs_f64();
            cost.last_cpu_seconds = Some(secs);
            cost.max_cpu_seconds = Some(cost.max_cpu_seconds.unwrap_or(0.0).max(secs));
        }
        endpoint.publish(metrics::render(&view, &cost));
        next += interval;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// The screen: refresh every interval, keys in between (s sort, p pause, q quit).
fn live(sampler: &mut Sampler, interval: Duration, opts: &Options) -> anyhow::Result<()> {
    let mut terminal = ratatui::init();
    let result = screen_loop(&mut terminal, sampler, interval, opts);
    ratatui::restore();
    result
}

fn screen_loop(
    terminal: &mut ratatui::DefaultTerminal,
    sampler: &mut Sampler,
    interval: Duration,
    opts: &Options,
) -> anyhow::Result<()> {
    let mut state = State::default();
    let mut shown = View::default();
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            state.push(sampler.sample());
            next += interval;
        }
        if !state.paused {
            let width = terminal.size()?.width;
            shown = state.view(render::spark_cols(width));
        }
        shown.paused = state.paused;
        shown.sort = state.sort;
        terminal.draw(|f| render::draw(f.area(), f.buffer_mut(), &shown, opts))?;
        if !event::poll(next.saturating_duration_since(Instant::now()))? {
            continue;
        }
        if let Event::Key(k) = event::read()? {
            if k.kind != KeyEventKind::Press {
                continue;
            }
            match k.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
                KeyCode::Char('p') | KeyCode::Char(' ') => state.paused = !state.paused,
                KeyCode::Char('s') => {
                    state.sort = state.sort.next();
                    shown = state.view(render::spark_cols(terminal.size()?.width));
                }
                _ => {}
            }
        }
    }
}
