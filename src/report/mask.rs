//! Every plan, rendered object and saved plan passes through here before it is shown or
//! written: secret values become markers (see `secrets::mask`).

use crate::plan::{Change, Plan};
use crate::render::Rendered;
use crate::secrets::Masker;

/// A copy of a plan that is safe to show.
pub fn mask_plan(plan: &Plan, masker: &Masker) -> Plan {
    let mut out = plan.clone();
    for change in &mut out.changes {
        mask_change(change, masker);
    }
    out
}

fn mask_change(change: &mut Change, masker: &Masker) {
    let (live, desired) = masker.mask_pair(change.live.as_ref(), change.desired.as_ref(), &change.secrets);
    change.live = live;
    change.desired = desired;
    let kind = change.object.kind.clone();
    for field in &mut change.fields {
        let state = match (&field.old, &field.new) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        field.old = field.old.as_ref().map(|v| masker.mask_at(&kind, &field.pointer, v, &change.secrets, state));
        field.new = field.new.as_ref().map(|v| masker.mask_at(&kind, &field.pointer, v, &change.secrets, state));
    }
}

/// Rendered environments with secret values masked.
pub fn mask_rendered(rendered: &[Rendered], masker: &Masker) -> Vec<Rendered> {
    rendered
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for object in &mut r.objects {
                object.body = masker.mask_object(&object.body, &object.secrets);
            }
            r
        })
        .collect()
}

/// A saved plan that is safe to write and show: every plan's secret values become markers.
pub fn mask_saved_plan(saved: crate::check::SavedPlan) -> crate::check::SavedPlan {
    let masker = Masker::new();
    let plans = saved.plans.iter().map(|p| mask_plan(p, &masker)).collect();
    crate::check::SavedPlan { plans, ..saved }
}
