//! The test server driven by an unmodified kube-rs client, watcher, reflector and Controller.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, init_logging, install_widgets, widget, within, Widget, WidgetStatus};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{finalizer, reflector, watcher, WatchStreamExt};
use kube::{Client, Discovery, Resource, ResourceExt};
use poolgate_kube_apiserver::TestApiServer;
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    c.data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
    c
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crud_with_optimistic_concurrency() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());

    let created = cms.create(&PostParams::default(), &cm("a", &[("app", "x")])).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1: u64 = created.resource_version().unwrap().parse().unwrap();

    let dup = api_error(cms.create(&PostParams::default(), &cm("a", &[])).await.unwrap_err());
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));

    let mut fetched = cms.get("a").await.unwrap();
    fetched.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = cms.replace("a", &PostParams::default(), &fetched).await.unwrap();
    let rv2: u64 = replaced.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1, "resourceVersion must increase: {rv1} -> {rv2}");

    // `fetched` still carries the old resourceVersion.
    let stale = api_error(cms.replace("a", &PostParams::default(), &fetched).await.unwrap_err());
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let gone = api_error(cms.get("a").await.unwrap_err());
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert!(gone.message.contains("configmaps \"a\" not found"), "{}", gone.message);
}

#[tokio::test]
async fn list_selectors_and_pagination() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    for i in 0..5 {
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), &[("tier", tier)])).await.unwrap();
    }
    let even = cms.list(&ListParams::default().labels("tier=even")).await.unwrap();
    assert_eq!(even.items.len(), 3);
    let set = cms.list(&ListParams::default().labels("tier in (odd),tier!=even")).await.unwrap();
    assert_eq!(set.items.len(), 2);
    let by_name = cms.list(&ListParams::default().fields("metadata.name=c3")).await.unwrap();
    assert_eq!(by_name.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["c3"]);

    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    for _ in 0..10 {
        let page = cms.list(&params).await.unwrap();
        assert!(page.items.len() <= 2);
        names.extend(page.items.iter().map(|c| c.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = ListParams::default().limit(2).continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install_widgets(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client);
    let cfg = |size: i64| json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": size}});

    widgets.patch("w", &PatchParams::apply("alice"), &Patch::Apply(cfg(1))).await.unwrap();
    // Same value: shared ownership, no conflict.
    widgets.patch("w", &PatchParams::apply("bob"), &Patch::Apply(cfg(1))).await.unwrap();
    let conflict =
        api_error(widgets.patch("w", &PatchParams::apply("carol"), &Patch::Apply(cfg(2))).await.unwrap_err());
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(conflict.message.contains(".spec.size"), "{}", conflict.message);
    let causes = conflict.details.unwrap().causes;
    assert!(causes.iter().all(|c| c.reason == "FieldManagerConflict" && c.field == ".spec.size"), "{causes:?}");

    let forced = widgets.patch("w", &PatchParams::apply("carol").force(), &Patch::Apply(cfg(2))).await.unwrap();
    assert_eq!(forced.spec.size, 2);
    let managers: Vec<String> = forced
        .managed_fields()
        .iter()
        .filter(|m| m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:size").is_some()))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["carol"], "forcing takes the field from the others");

    // Alice stops applying `size`... but carol owns it, so it stays; alice's label goes away.
    let alice = json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "1"}}, "spec": {"size": 2}});
    widgets.patch("w", &PatchParams::apply("alice").force(), &Patch::Apply(alice)).await.unwrap();
    let only_meta = json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let after = widgets.patch("w", &PatchParams::apply("alice"), &Patch::Apply(only_meta)).await.unwrap();
    assert_eq!(after.spec.size, 2);
    assert!(after.labels().get("a").is_none(), "fields a manager stops applying are removed");

    // Apply without a field manager is a 400.
    let raw = Api::<Widget>::default_namespaced(server.client());
    let err = api_error(raw.patch("w", &PatchParams::default(), &Patch::Apply(cfg(3))).await.unwrap_err());
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn status_subresource_isolation_and_generation() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install_widgets(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client);
    let w = widgets.create(&PostParams::default(), &widget("g", 1)).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1));

    // A status write cannot change spec.
    let both = json!({"spec": {"size": 99}, "status": {"phase": "Ready"}});
    let s = widgets.patch_status("g", &PatchParams::default(), &Patch::Merge(&both)).await.unwrap();
    assert_eq!(s.spec.size, 1);
    assert_eq!(s.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Ready"));
    assert_eq!(s.metadata.generation, Some(1), "status writes do not bump generation");

    // A main-resource write cannot change status; a spec change bumps generation.
    let both = json!({"spec": {"size": 2}, "status": {"phase": "Broken"}});
    let m = widgets.patch("g", &PatchParams::default(), &Patch::Merge(&both)).await.unwrap();
    assert_eq!(m.spec.size, 2);
    assert_eq!(m.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Ready"));
    assert_eq!(m.metadata.generation, Some(2));

    // Metadata-only changes do not bump generation; no-op writes do not bump resourceVersion.
    let labelled = widgets
        .patch("g", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    let again = widgets
        .patch("g", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), labelled.resource_version());

    // Status via server-side apply, as controllers do.
    let status = json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "status": {"phase": "Done", "observedGeneration": 2}});
    let applied = widgets.patch_status("g", &PatchParams::apply("ctl").force(), &Patch::Apply(status)).await.unwrap();
    assert_eq!(applied.status, Some(WidgetStatus { phase: Some("Done".into()), observed_generation: Some(2) }));
    let entry = applied.managed_fields().iter().find(|m| m.manager.as_deref() == Some("ctl")).cloned().unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    // Re-applying the same status is a no-op: no new resourceVersion, so no watch event.
    let status = json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "status": {"phase": "Done", "observedGeneration": 2}});
    let same = widgets.patch_status("g", &PatchParams::apply("ctl").force(), &Patch::Apply(status)).await.unwrap();
    assert_eq!(same.resource_version(), applied.resource_version());
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install_widgets(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client);
    let mut w = widget("f", 1);
    w.metadata.finalizers = Some(vec!["test.poolgate.dev/hold".into()]);
    widgets.create(&PostParams::default(), &w).await.unwrap();

    let pending = widgets.delete("f", &DeleteParams::default()).await.unwrap();
    let pending = pending.left().expect("a finalizer keeps the object");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(pending.metadata.generation, Some(2), "starting deletion bumps generation");

    let add = json!({"metadata": {"finalizers": ["test.poolgate.dev/hold", "another"]}});
    let err = api_error(widgets.patch("f", &PatchParams::default(), &Patch::Merge(add)).await.unwrap_err());
    assert_eq!(err.code, 422);

    // Updates still work while deleting; removing the last finalizer deletes the object.
    let rm = json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "test.poolgate.dev/hold"},
                    {"op": "remove", "path": "/metadata/finalizers"}]);
    widgets.patch("f", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(rm).unwrap())).await.unwrap();
    assert_eq!(api_error(widgets.get("f").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn json_patch_test_failure_is_422_and_strategic_merge_on_builtins() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &cm("p", &[("a", "1")])).await.unwrap();
    let bad = json!([{"op": "test", "path": "/data/k", "value": "nope"}, {"op": "remove", "path": "/data"}]);
    let err = api_error(
        cms.patch("p", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(bad).unwrap()))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    let smp = json!({"metadata": {"labels": {"a": null, "b": "2"}, "finalizers": ["x"]}});
    let out = cms.patch("p", &PatchParams::default(), &Patch::Strategic(smp)).await.unwrap();
    assert_eq!(out.labels(), &BTreeMap::from([("b".to_string(), "2".to_string())]));
    let smp = json!({"metadata": {"finalizers": ["y"]}});
    let out = cms.patch("p", &PatchParams::default(), &Patch::Strategic(smp)).await.unwrap();
    assert_eq!(out.finalizers(), ["x", "y"], "finalizers merge as a set");

    // Strategic merge is not supported for custom resources (415, as the real server).
    install_widgets(&server.client()).await;
    let widgets: Api<Widget> = Api::default_namespaced(server.client());
    widgets.create(&PostParams::default(), &widget("s", 1)).await.unwrap();
    let err = api_error(
        widgets.patch("s", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"size": 2}}))).await.unwrap_err(),
    );
    assert_eq!(err.code, 415);
}

#[tokio::test]
async fn crd_schema_defaults_prunes_and_validates() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let mut crd = <Widget as kube::CustomResourceExt>::crd();
    // Add a default and an enum to the generated schema.
    let mut schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["color"] =
        json!({"type": "string", "enum": ["red", "blue"], "default": "red"});
    crd.spec.versions[0].schema = Some(serde_json::from_value(schema).unwrap());
    Api::<CustomResourceDefinition>::all(client.clone()).create(&PostParams::default(), &crd).await.unwrap();

    let raw: Api<kube::api::DynamicObject> =
        Api::default_namespaced_with(client.clone(), &kube::api::ApiResource::erase::<Widget>(&()));
    let obj = |spec: serde_json::Value| -> kube::api::DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "metadata": {"name": "v"}, "spec": spec}),
        )
        .unwrap()
    };
    let ok = raw.create(&PostParams::default(), &obj(json!({"size": 1, "unknown": true}))).await.unwrap();
    assert_eq!(ok.data["spec"], json!({"size": 1, "color": "red"}), "defaulted and pruned");

    let err = api_error(
        raw.create(&PostParams::default(), &obj(json!({"size": "big", "color": "green"}))).await.unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.unwrap().causes;
    let fields: Vec<(&str, &str)> = causes.iter().map(|c| (c.field.as_str(), c.reason.as_str())).collect();
    assert!(fields.contains(&("spec.size", "FieldValueTypeInvalid")), "{fields:?}");
    assert!(fields.contains(&("spec.color", "FieldValueNotSupported")), "{fields:?}");
    let err = api_error(raw.create(&PostParams::default(), &obj(json!({}))).await.unwrap_err());
    assert!(err.message.contains("spec.size: Required value"), "{}", err.message);
}

#[tokio::test]
async fn discovery_follows_crd_lifecycle() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let before = Discovery::new(client.clone()).run().await.unwrap();
    assert!(before.has_group("batch") && before.has_group("coordination.k8s.io"));
    assert!(!before.has_group("test.poolgate.dev"));

    install_widgets(&client).await;
    let after = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = after
        .resolve_gvk(&kube::api::GroupVersionKind::gvk("test.poolgate.dev", "v1", "Widget"))
        .expect("widgets served");
    assert_eq!(ar.plural, "widgets");
    assert!(caps.subresources.iter().any(|(sub, _)| sub.plural == "status"));
    let aggregated = Discovery::new(client.clone()).run_aggregated().await.unwrap();
    let gvk = kube::api::GroupVersionKind::gvk("test.poolgate.dev", "v1", "Widget");
    let (ar2, caps2) = aggregated.resolve_gvk(&gvk).expect("widgets in aggregated discovery");
    assert_eq!((ar2.plural.as_str(), caps2.scope.clone()), ("widgets", kube::discovery::Scope::Namespaced));
    let core = aggregated.resolve_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "ConfigMap"));
    assert!(core.is_some(), "core group served");
    let jobs = aggregated.resolve_gvk(&kube::api::GroupVersionKind::gvk("batch", "v1", "Job"));
    assert!(jobs.is_some_and(|(_, c)| c.subresources.iter().any(|(sub, _)| sub.plural == "status")));

    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    widgets.create(&PostParams::default(), &widget("d", 1)).await.unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .delete("widgets.test.poolgate.dev", &DeleteParams::default())
        .await
        .unwrap();
    let gone = Discovery::new(client.clone()).run().await.unwrap();
    assert!(!gone.has_group("test.poolgate.dev"));
    assert_eq!(api_error(widgets.get("d").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn watch_resumes_from_resource_version_and_expires() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let created = cms.create(&PostParams::default(), &cm("w", &[])).await.unwrap();
    let from = created.resource_version().unwrap();
    cms.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "1"}}))).await.unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();

    let stream = cms.watch(&WatchParams::default().timeout(5), &from).await.unwrap();
    let events: Vec<_> = within(10, "watch replay", stream.take(2).try_collect::<Vec<_>>()).await.unwrap();
    match events.as_slice() {
        [WatchEvent::Modified(m), WatchEvent::Deleted(d)] => {
            assert_eq!(m.data.as_ref().unwrap()["k"], "1");
            assert_eq!(d.name_any(), "w");
        }
        other => panic!("unexpected events {other:?}"),
    }

    server.compact();
    let stream = cms.watch(&WatchParams::default().timeout(5), &from).await.unwrap();
    let events: Vec<_> = within(10, "expired watch", stream.take(1).try_collect::<Vec<_>>()).await.unwrap();
    match events.as_slice() {
        [WatchEvent::Error(status)] => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_timeout_and_bookmarks() {
    let server = TestApiServer::builder().bookmark_interval(Duration::from_millis(200)).start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let rv = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let stream = cms.watch(&WatchParams::default().timeout(1), &rv).await.unwrap();
    let events: Vec<_> = within(5, "watch ends at its timeout", stream.try_collect::<Vec<_>>()).await.unwrap();
    assert!(!events.is_empty() && events.iter().all(|e| matches!(e, WatchEvent::Bookmark(_))), "{events:?}");
}

#[tokio::test]
async fn reflector_with_streaming_lists_tracks_changes() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &cm("pre", &[])).await.unwrap();
    let (reader, writer) = reflector::store();
    let cfg = watcher::Config::default().streaming_lists();
    let stream = reflector(writer, watcher(cms.clone(), cfg)).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    within(10, "reflector ready", reader.wait_until_ready()).await.unwrap();
    assert_eq!(reader.state().len(), 1);
    cms.create(&PostParams::default(), &cm("post", &[])).await.unwrap();
    cms.delete("pre", &DeleteParams::default()).await.unwrap();
    eventually(10, "reflector sees create and delete", || {
        let names: Vec<String> = reader.state().iter().map(|c| c.name_any()).collect();
        async move { (names == ["post"]).then_some(()) }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install_widgets(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owned = |owner: &Widget, name: &str| {
        let mut c = cm(name, &[]);
        c.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
        c
    };

    let bg = widgets.create(&PostParams::default(), &widget("bg", 1)).await.unwrap();
    cms.create(&PostParams::default(), &owned(&bg, "bg-child")).await.unwrap();
    widgets.delete("bg", &DeleteParams::background()).await.unwrap();
    assert_eq!(api_error(cms.get("bg-child").await.unwrap_err()).code, 404);

    let orphan = widgets.create(&PostParams::default(), &widget("orphan", 1)).await.unwrap();
    cms.create(&PostParams::default(), &owned(&orphan, "orphan-child")).await.unwrap();
    widgets.delete("orphan", &DeleteParams::orphan()).await.unwrap();
    let kept = cms.get("orphan-child").await.unwrap();
    assert!(kept.owner_references().is_empty());

    // Foreground: the owner waits while a dependent is held by a finalizer.
    let fg = widgets.create(&PostParams::default(), &widget("fg", 1)).await.unwrap();
    let mut child = owned(&fg, "fg-child");
    child.metadata.finalizers = Some(vec!["hold".into()]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    widgets.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let waiting = widgets.get("fg").await.unwrap();
    assert!(waiting.finalizers().contains(&"foregroundDeletion".to_string()));
    assert!(cms.get("fg-child").await.unwrap().metadata.deletion_timestamp.is_some());
    cms.patch("fg-child", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    assert_eq!(api_error(widgets.get("fg").await.unwrap_err()).code, 404);

    // An object with two owners survives the first owner's deletion.
    let a = widgets.create(&PostParams::default(), &widget("a", 1)).await.unwrap();
    let b = widgets.create(&PostParams::default(), &widget("b", 1)).await.unwrap();
    let mut shared = cm("shared", &[]);
    let reference = |w: &Widget| OwnerReference { controller: None, ..w.controller_owner_ref(&()).unwrap() };
    shared.metadata.owner_references = Some(vec![reference(&a), reference(&b)]);
    cms.create(&PostParams::default(), &shared).await.unwrap();
    widgets.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(cms.get("shared").await.unwrap().owner_references().len(), 1);
    widgets.delete("b", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.get("shared").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn namespaces_terminate_with_their_content() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut ns = Namespace::default();
    ns.metadata.name = Some("team".into());
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let mut held = cm("held", &[]);
    held.metadata.finalizers = Some(vec!["hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.create(&PostParams::default(), &cm("free", &[])).await.unwrap();

    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    assert_eq!(api_error(missing.create(&PostParams::default(), &cm("x", &[])).await.unwrap_err()).code, 404);

    nss.delete("team", &DeleteParams::default()).await.unwrap();
    let terminating = nss.get("team").await.unwrap();
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert_eq!(api_error(cms.get("free").await.unwrap_err()).code, 404);
    let forbidden = api_error(cms.create(&PostParams::default(), &cm("new", &[])).await.unwrap_err());
    assert_eq!(forbidden.code, 403);

    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert_eq!(api_error(nss.get("team").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn secrets_string_data_and_status_errors() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut s = Secret::default();
    s.metadata.name = Some("creds".into());
    s.string_data = Some(BTreeMap::from([("password".to_string(), "hunter2".to_string())]));
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(created.string_data.is_none());
    assert_eq!(created.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let frozen = json!({"immutable": true});
    secrets.patch("creds", &PatchParams::default(), &Patch::Merge(&frozen)).await.unwrap();
    let change = json!({"stringData": {"password": "other"}});
    let err = api_error(secrets.patch("creds", &PatchParams::default(), &Patch::Merge(&change)).await.unwrap_err());
    assert_eq!(err.code, 422, "immutable secrets keep their data: {}", err.message);

    // Malformed bodies get a metav1.Status, not a panic or a plain-text error.
    let req = http::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    let err = client.request::<ConfigMap>(req).await.unwrap_err();
    let status = api_error(err);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));

    let jobs: Api<Job> = Api::default_namespaced(client);
    let bad: Job = serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})).unwrap();
    let err = api_error(jobs.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422, "{}", err.message);
}

// ---- A Controller reconciling the sample CRD ----

const FINALIZER: &str = "test.poolgate.dev/cleanup";

struct Ctx {
    client: Client,
    cleaned: tokio::sync::mpsc::UnboundedSender<String>,
}

async fn reconcile(obj: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, finalizer::Error<kube::Error>> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            finalizer::Event::Apply(w) => {
                let status = json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget",
                    "status": {"phase": format!("size-{}", w.spec.size), "observedGeneration": w.metadata.generation}});
                api.patch_status(
                    &w.name_any(),
                    &PatchParams::apply("widget-controller").force(),
                    &Patch::Apply(status),
                )
                .await?;
                Ok(Action::await_change())
            }
            finalizer::Event::Cleanup(w) => {
                let _ = ctx.cleaned.send(w.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
}

fn error_policy(_: Arc<Widget>, err: &finalizer::Error<kube::Error>, _: Arc<Ctx>) -> Action {
    tracing::warn!("reconcile failed: {err}");
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn controller_reconciles_sample_crd_with_finalizer() {
    init_logging();
    let server = TestApiServer::start().await;
    let client = server.client();
    install_widgets(&client).await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let (tx, mut cleaned) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx { client: client.clone(), cleaned: tx });
    let controller = tokio::spawn(
        Controller::new(widgets.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );

    widgets.create(&PostParams::default(), &widget("ctl", 3)).await.unwrap();
    let phase = |want: &'static str, generation: i64| {
        let widgets = widgets.clone();
        move || {
            let widgets = widgets.clone();
            async move {
                let w = widgets.get("ctl").await.ok()?;
                let s = w.status.clone()?;
                (s.phase.as_deref() == Some(want) && s.observed_generation == Some(generation)).then_some(w)
            }
        }
    };
    let w = eventually(15, "controller sets status", phase("size-3", 1)).await;
    assert_eq!(w.finalizers(), [FINALIZER]);

    widgets.patch("ctl", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 4}}))).await.unwrap();
    eventually(15, "controller sees the spec change", phase("size-4", 2)).await;

    widgets.delete("ctl", &DeleteParams::default()).await.unwrap();
    let name = within(15, "cleanup runs", cleaned.recv()).await;
    assert_eq!(name.as_deref(), Some("ctl"));
    eventually(15, "object is gone after its finalizer", || {
        let widgets = widgets.clone();
        async move { widgets.get_opt("ctl").await.ok().flatten().is_none().then_some(()) }
    })
    .await;
    controller.abort();
}

#[tokio::test]
async fn recorder_publishes_and_aggregates_events() {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = TestApiServer::start().await;
    let client = server.client();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let target = cms.create(&PostParams::default(), &cm("evt", &[])).await.unwrap();
    let recorder = Recorder::new(client.clone(), Reporter { controller: "test-ctl".into(), instance: None });
    let ev = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("ok".into()),
        action: "Sync".into(),
        secondary: None,
    };
    recorder.publish(&ev, &target.object_ref(&())).await.unwrap();
    recorder.publish(&ev, &target.object_ref(&())).await.unwrap();
    let events: Api<K8sEvent> = Api::default_namespaced(client);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1, "the second publish patches the first event into a series");
    let e = &list.items[0];
    assert_eq!((e.reason.as_deref(), e.series.as_ref().map(|s| s.count)), (Some("Synced"), Some(2)));
    assert_eq!(e.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("evt"));
}

#[tokio::test]
async fn metadata_watcher_gets_partial_objects() {
    let server = TestApiServer::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    let mut s = Secret::default();
    s.metadata.name = Some("meta".into());
    s.string_data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
    secrets.create(&PostParams::default(), &s).await.unwrap();
    let listed = secrets.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|m| m.name_any()).collect::<Vec<_>>(), ["meta"]);
    assert_eq!(listed.items[0].types.as_ref().map(|t| t.kind.as_str()), Some("PartialObjectMetadata"));
    let partial: Api<kube::core::PartialObjectMeta<Secret>> = Api::default_namespaced(server.client());
    let stream = watcher(partial, watcher::Config::default()).applied_objects();
    let first = within(10, "metadata watcher", stream.boxed().try_next()).await.unwrap().unwrap();
    assert_eq!(first.name_any(), "meta");
}

#[tokio::test]
async fn selector_watch_sees_objects_leave_and_enter() {
    let server = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    cms.create(&PostParams::default(), &cm("sel", &[("app", "on")])).await.unwrap();
    let rv = cms.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    let relabel = |v: &'static str| json!({"metadata": {"labels": {"app": v}}});
    cms.patch("sel", &PatchParams::default(), &Patch::Merge(relabel("off"))).await.unwrap();
    cms.patch("sel", &PatchParams::default(), &Patch::Merge(relabel("on"))).await.unwrap();
    let stream = cms.watch(&WatchParams::default().labels("app=on").timeout(5), &rv).await.unwrap();
    let events: Vec<_> = within(10, "selector watch", stream.take(2).try_collect::<Vec<_>>()).await.unwrap();
    assert!(matches!(events.as_slice(), [WatchEvent::Deleted(_), WatchEvent::Added(_)]), "{events:?}");
}

#[tokio::test]
async fn malformed_requests_get_status_errors_not_panics() {
    let server = TestApiServer::start().await;
    let client = server.client();
    install_widgets(&client).await;
    let cases: &[(&str, &str, &str, &str, u16)] = &[
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", "[1,2]", 400),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", r#"{"metadata":{"name":"Bad_Name"}}"#, 422),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", r#"{"kind":"Secret","metadata":{"name":"x"}}"#, 400),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf", "k8s\0", 415),
        ("PATCH", "/api/v1/namespaces/default/configmaps/none", "application/merge-patch+json", "{}", 404),
        ("PATCH", "/api/v1/namespaces/default/configmaps/none", "text/plain", "{}", 415),
        ("PATCH", "/apis/test.poolgate.dev/v1/namespaces/default/widgets/w?fieldManager=m", "application/apply-patch+yaml", "- [unbalanced", 400),
        ("PATCH", "/apis/test.poolgate.dev/v1/namespaces/default/widgets/w?fieldManager=m", "application/apply-patch+yaml", "spec: {size: 1}", 400),
        ("PATCH", "/apis/test.poolgate.dev/v1/namespaces/default/widgets/w?fieldManager=m", "application/apply-patch+yaml", "apiVersion: test.poolgate.dev/v1\nkind: Widget\nspec: {size: \"\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\"}", 422),
        ("PATCH", "/api/v1/namespaces/default/configmaps/none", "application/json-patch+json", r#"{"op":"x"}"#, 404),
        ("GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b", "", "", 400),
        ("GET", "/api/v1/namespaces/default/configmaps?limit=many", "", "", 400),
        ("GET", "/api/v1/namespaces/default/configmaps?continue=garbage", "", "", 400),
        ("GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=abc", "", "", 400),
        ("GET", "/api/v1/namespaces/default/nothings", "", "", 404),
        ("GET", "/apis/nogroup/v1", "", "", 404),
        ("PUT", "/api/v1/namespaces/default/configmaps/a", "application/json", r#"{"metadata":{"name":"b"}}"#, 400),
        ("DELETE", "/api/v1/namespaces/default/configmaps/a", "application/json", "not json", 400),
        ("DELETE", "/api/v1/namespaces/default", "", "", 403),
        ("POST", "/api/v1/namespaces/default/configmaps/a/status", "application/json", "{}", 404),
    ];
    for (method, path, ct, body, want) in cases {
        let mut req = http::Request::builder().method(*method).uri(*path);
        if !ct.is_empty() {
            req = req.header("content-type", *ct);
        }
        let req = req.body(body.as_bytes().to_vec()).unwrap();
        let err = client.request_text(req).await.expect_err(&format!("{method} {path} {body:?} must fail"));
        let status = api_error(err);
        assert_eq!(status.code, *want, "{method} {path} {body:?}: {}", status.message);
        assert!(!status.reason.is_empty() && !status.message.is_empty());
    }
}

#[tokio::test]
async fn server_side_apply_merges_associative_lists_per_element() {
    let server = TestApiServer::start().await;
    let client = server.client();
    let mut crd = <Widget as kube::CustomResourceExt>::crd();
    let mut schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"] = json!({
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
        "items": {"type": "object", "required": ["type", "status"],
                  "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}
    });
    crd.spec.versions[0].schema = Some(serde_json::from_value(schema).unwrap());
    Api::<CustomResourceDefinition>::all(client.clone()).create(&PostParams::default(), &crd).await.unwrap();
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    widgets.create(&PostParams::default(), &widget("c", 1)).await.unwrap();
    let raw: Api<kube::api::DynamicObject> =
        Api::default_namespaced_with(client, &kube::api::ApiResource::erase::<Widget>(&()));
    let cond = |t: &str, s: &str| {
        json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget",
        "status": {"conditions": [{"type": t, "status": s}]}})
    };
    let ssa = |m: &str| PatchParams::apply(m);

    raw.patch_status("c", &ssa("reconciler"), &Patch::Apply(cond("Ready", "True"))).await.unwrap();
    let both = raw.patch_status("c", &ssa("migrator"), &Patch::Apply(cond("Migrated", "False"))).await.unwrap();
    let types = |o: &kube::api::DynamicObject| -> Vec<(String, String)> {
        o.data["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["type"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(types(&both), [("Ready".into(), "True".into()), ("Migrated".into(), "False".into())]);
    let owned = both.managed_fields().iter().find(|m| m.manager.as_deref() == Some("migrator")).cloned().unwrap();
    let fields = owned.fields_v1.unwrap().0;
    assert!(fields.pointer("/f:status/f:conditions/k:{\"type\":\"Migrated\"}/f:status").is_some(), "{fields}");

    // Another manager changing the migrator's element conflicts; the owner may change it freely.
    let err = api_error(
        raw.patch_status("c", &ssa("reconciler"), &Patch::Apply(cond("Migrated", "True"))).await.unwrap_err(),
    );
    assert_eq!(err.code, 409);
    let updated = raw.patch_status("c", &ssa("migrator"), &Patch::Apply(cond("Migrated", "True"))).await.unwrap();
    assert_eq!(types(&updated), [("Ready".into(), "True".into()), ("Migrated".into(), "True".into())]);

    // The migrator stops applying conditions: only its element goes.
    let none = json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "status": {}});
    let after = raw.patch_status("c", &ssa("migrator"), &Patch::Apply(none)).await.unwrap();
    assert_eq!(types(&after), [("Ready".into(), "True".into())]);
}
