//! `tune profiles`: list and show resolved profiles.

use comfy_table::{presets, Table};

use super::{Context, Outcome};
use crate::cli::profiles::{ProfilesAction, ProfilesArgs};
use crate::knobs::REGISTRY;
use crate::profile::{self, Profile};
use crate::units::group;

/// `profiles show` text: the profile with inheritance flattened and every requirement's value and why.
pub fn show_text(p: &Profile) -> String {
    let mut out = format!(
        "profile {}: {}\n  source:    {}\n  extends:   {}\n  target:    {} connections\n  role:      {} ({} socket{} per connection)\n  formulas:  headroom {}%, {} process{}, {} B kernel memory per socket, source addresses: {}\n\n",
        p.name,
        p.description,
        p.source,
        if p.chain.len() > 1 { p.chain[1..].join(" -> ") } else { "nothing".into() },
        group(p.target),
        p.role,
        p.role.sockets_per_connection(),
        if p.role.sockets_per_connection() == 1 { "" } else { "s" },
        p.params.headroom_percent,
        p.params.processes,
        if p.params.processes == 1 { "" } else { "es" },
        group(p.params.bytes_per_socket),
        p.params
            .source_addresses
            .map_or("as needed".to_string(), |a| a.to_string()),
    );
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN);
    t.force_no_tty();
    t.set_header(vec!["knob", "required", "why"]);
    // Registry order, so show and check list knobs alike.
    for k in REGISTRY {
        if let Some(r) = p.requirements.get(&k.id) {
            t.add_row(vec![k.name.to_string(), r.value.to_string(), r.why.clone()]);
        }
    }
    crate::report::screen::fit_bordered(&mut t, crate::text::width());
    out.push_str(&t.to_string());
    out.push('\n');
    out
}

pub fn run(ctx: &Context, args: &ProfilesArgs) -> anyhow::Result<Outcome> {
    match &args.action {
        ProfilesAction::List => {
            let mut t = Table::new();
            t.load_preset(presets::ASCII_MARKDOWN);
            t.force_no_tty();
            t.set_header(vec![
                "name",
                "target",
                "role",
                "extends",
                "source",
                "description",
            ]);
            for (name, source) in profile::available(&ctx.root) {
                match profile::load(&ctx.root, &name) {
                    Ok(p) => t.add_row(vec![
                        name,
                        group(p.target),
                        p.role.to_string(),
                        p.chain.get(1).cloned().unwrap_or_default(),
                        source,
                        p.description,
                    ]),
                    Err(e) => t.add_row(vec![
                        name,
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        source,
                        format!("error: {e:#}"),
                    ]),
                };
            }
            crate::report::screen::fit_bordered(&mut t, crate::text::width());
            println!("{t}");
        }
        ProfilesAction::Show { name } => {
            let p = profile::load(&ctx.root, name)?;
            print!("{}", crate::text::fit(&show_text(&p), crate::text::width()));
        }
    }
    Ok(Outcome::Pass)
}
