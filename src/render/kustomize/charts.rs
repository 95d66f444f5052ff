//! `helmCharts`: charts inflated with the real helm, as `kustomize build --enable-helm` does —
//! the chart from `{chartHome}/{name}` (with `repo` and `version`,
//! `{chartHome}/{name}-{version}/{name}`), else fetched from `repo` and pinned in `cairn.lock`;
//! `valuesInline` over (or under) `valuesFile` as `valuesMerge` says, then
//! `additionalValuesFiles`; the output appended to the kustomization's resources after its
//! ConfigMap and Secret generators, for its transformers to work on.

use serde_json::Value;

use super::build::{Acc, Builder, resolve_file};
use super::file::{HelmChartEntry, Kustomization, Located, ValuesMerge};
use super::resource::Resource;
use crate::config::ChartSource;
use crate::error::{Error, Result};
use crate::render::helm::{ChartRequest, ValuesSource};
use crate::render::{Parsed, SourceRef};
use crate::repo::EntryKind;

pub fn inflate(b: &mut Builder, k: &Kustomization, acc: &mut Acc) -> Result<()> {
    if k.helm_charts.is_empty() {
        return Ok(());
    }
    let Some(render) = b.charts else {
        return Err(Error::Document {
            file: k.file.clone(),
            line: 1,
            message: "`helmCharts` cannot be rendered here (no target to render them for)".into(),
        });
    };
    for entry in &k.helm_charts {
        let request = request(b, k, entry)?;
        let (files, _record) = render(request)?;
        for (file, docs) in files {
            for Parsed { doc, secrets, .. } in docs {
                let origin = SourceRef { file: file.clone(), line: doc.line };
                let mut body = doc.value;
                crate::render::ObjectId::of(&body).map_err(|message| Error::Document {
                    file: origin.file.clone(),
                    line: origin.line,
                    message,
                })?;
                b.vault.seal(&mut body, &secrets);
                acc.append(Resource::new(body, origin))?;
            }
        }
    }
    Ok(())
}

/// What helm is asked to render for one entry.
fn request(b: &Builder, k: &Kustomization, entry: &HelmChartEntry) -> Result<ChartRequest> {
    let at = |value: &str| Located { value: value.to_string(), at: entry.at.clone() };
    let home = match &k.chart_home {
        Some(home) => resolve_file(k, home, "helmGlobals.chartHome")?,
        None => resolve_file(k, &at("charts"), "the chart home")?,
    };
    let name = &entry.name;
    let base = match (&entry.repo, &entry.version) {
        (Some(_), Some(version)) => format!("{home}/{name}-{version}"),
        _ => home,
    };
    let local = format!("{base}/{name}");
    // As kustomize: a chart found under the chart home is used as it is, without a pull.
    let chart = if b.snapshot.entry_kind(&local)? == Some(EntryKind::Dir) {
        ChartSource::Path { path: local.clone() }
    } else {
        match (&entry.repo, &entry.version) {
            (Some(repo), Some(version)) if repo.starts_with("http://") || repo.starts_with("https://") => {
                ChartSource::Repository {
                    url: repo.trim_end_matches('/').to_string(),
                    name: name.clone(),
                    version: version.clone(),
                }
            }
            (Some(repo), Some(_)) => {
                return Err(entry
                    .at
                    .error(format!("helmCharts entry `{name}`: `repo` `{repo}` is not an http(s) chart repository")));
            }
            (Some(_), None) => {
                return Err(entry.at.error(format!(
                    "helmCharts entry `{name}` has `repo` but no `version`; kustomize would pull whatever is newest, so git would not say what runs — pin `version`"
                )));
            }
            (None, _) => {
                return Err(entry.at.error(format!(
                    "helmCharts entry `{name}`: no chart at {local} and no `repo` to fetch it from; vendor the chart there or give `repo` and `version`"
                )));
            }
        }
    };
    let values_file = entry.values_file.as_ref().map(|f| resolve_file(k, f, "valuesFile")).transpose()?;
    let inline = entry.values_inline.clone().filter(|v| v.as_object().is_some_and(|m| !m.is_empty()));
    let inline_source =
        |values: Value| ValuesSource::Inline { label: format!("{} valuesInline of {name}", k.file), values };
    // The chart's own values.yaml is what helm starts from anyway; it is named only where it
    // must win over the inline values.
    let defaults = match &chart {
        ChartSource::Path { path } => Some(format!("{path}/values.yaml")),
        ChartSource::Repository { .. } => None,
    };
    let mut values = Vec::new();
    match (inline, entry.values_merge) {
        (None, _) => values.extend(values_file.map(ValuesSource::File)),
        (Some(inline), ValuesMerge::Override) => {
            values.extend(values_file.map(ValuesSource::File));
            values.push(inline_source(inline));
        }
        (Some(inline), ValuesMerge::Merge) => {
            values.push(inline_source(inline));
            match values_file.or(defaults) {
                Some(file) => values.push(ValuesSource::File(file)),
                None => {
                    return Err(entry.at.error(format!(
                        "helmCharts entry `{name}`: `valuesMerge: merge` with a chart from a repository needs `valuesFile` (the values that win over `valuesInline`)"
                    )));
                }
            }
        }
        (Some(inline), ValuesMerge::Replace) => values.push(inline_source(inline)),
    }
    for extra in &entry.additional_values_files {
        values.push(ValuesSource::File(resolve_file(k, extra, "additionalValuesFiles entry")?));
    }
    Ok(ChartRequest {
        label: match &chart {
            ChartSource::Path { path } => path.clone(),
            ChartSource::Repository { url, name, version } => format!("{url}/{name}@{version}"),
        },
        chart,
        release: entry.release_name.clone(),
        namespace: entry.namespace.clone(),
        default_namespace: false,
        values,
        set: Vec::new(),
        include_crds: entry.include_crds,
        include_tests: !entry.skip_tests,
        no_hooks: entry.skip_hooks,
        api_versions: entry.api_versions.clone(),
        kube_version: entry.kube_version.clone(),
        timeout: crate::config::DEFAULT_HELM_TIMEOUT,
        configured_at: format!("helmCharts entry `{name}` of {}:{}", k.file, entry.at.line),
    })
}
