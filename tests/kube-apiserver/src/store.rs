//! The object store: every object as JSON, one global resourceVersion counter, a bounded event
//! history for watch resumption, and a broadcast of new events to open watches.
//!
//! All state sits behind one mutex; writes happen under it and publish their event before the
//! lock is released, so a watch that subscribes under the same lock sees no gap and no duplicate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::meta;
use crate::registry::{self, ResourceType};

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed (the event carries its last state).
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in history and sent to watches.
#[derive(Debug, Clone)]
pub struct Event {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// Resource key (`ResourceType::key`).
    pub res: String,
    /// Namespace ("" for cluster-scoped objects).
    pub ns: String,
    /// Event type.
    pub etype: EventType,
    /// The object after the change (before it, for deletions).
    pub object: Value,
    /// The object before the change, so filtered watches can turn leaving a selector into DELETED.
    pub prev: Option<Value>,
}

/// Identifies a stored object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// Resource key.
    pub res: String,
    /// Namespace ("" for cluster-scoped objects).
    pub ns: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// Builds a key.
    pub fn new(res: &str, ns: &str, name: &str) -> Self {
        Self { res: res.into(), ns: ns.into(), name: name.into() }
    }
}

/// The resource key of CustomResourceDefinitions.
pub const CRD_RES: &str = "customresourcedefinitions.apiextensions.k8s.io";

/// Everything the server knows.
pub struct State {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Watches from a resourceVersion at or below this get 410 Gone.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    builtins: Vec<ResourceType>,
    crd_types: BTreeMap<String, ResourceType>,
}

/// What a watch gets when it subscribes.
pub struct Subscription {
    /// Events after the requested resourceVersion, from history.
    pub backlog: Vec<Arc<Event>>,
    /// New events.
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// The current resourceVersion.
    pub rv: u64,
}

impl State {
    /// An empty store keeping `history_cap` events for watch resumption.
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            compacted: 0,
            tx,
            builtins: registry::builtins(),
            crd_types: BTreeMap::new(),
        }
    }

    /// The current (latest) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// All served types.
    pub fn types(&self) -> impl Iterator<Item = &ResourceType> {
        self.builtins.iter().chain(self.crd_types.values())
    }

    /// The type served at `group/version/plural`.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types().find(|t| t.group == group && t.plural == plural && t.serves(version)).cloned()
    }

    /// The type with this resource key.
    pub fn type_by_key(&self, res: &str) -> Option<ResourceType> {
        self.types().find(|t| t.key() == res).cloned()
    }

    /// One object.
    pub fn get(&self, key: &ObjKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of a resource, optionally in one namespace, sorted by (namespace, name).
    pub fn list<'a>(&'a self, res: &'a str, ns: Option<&'a str>) -> impl Iterator<Item = (&'a ObjKey, &'a Value)> + 'a {
        let start = ObjKey::new(res, ns.unwrap_or(""), "");
        self.objects.range(start..).take_while(move |(k, _)| k.res == res && ns.is_none_or(|n| k.ns == n))
    }

    /// Every object (for garbage collection sweeps).
    pub fn all(&self) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.objects.iter()
    }

    /// Stores an object under a fresh resourceVersion and publishes ADDED or MODIFIED.
    pub fn put(&mut self, key: ObjKey, mut obj: Value) -> Value {
        self.rv += 1;
        meta::set_meta(&mut obj, "resourceVersion", Value::String(self.rv.to_string()));
        let prev = self.objects.insert(key.clone(), obj.clone());
        let etype = if prev.is_some() { EventType::Modified } else { EventType::Added };
        self.publish(&key, etype, obj.clone(), prev);
        if key.res == CRD_RES {
            self.refresh_crd(&key.name);
        }
        obj
    }

    /// Removes an object and publishes DELETED (with a fresh resourceVersion, as the real server).
    pub fn remove(&mut self, key: &ObjKey) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        let prev = obj.clone();
        meta::set_meta(&mut obj, "resourceVersion", Value::String(self.rv.to_string()));
        self.publish(key, EventType::Deleted, obj.clone(), Some(prev));
        if key.res == CRD_RES {
            self.refresh_crd(&key.name);
        }
        Some(obj)
    }

    fn publish(&mut self, key: &ObjKey, etype: EventType, object: Value, prev: Option<Value>) {
        let event = Arc::new(Event { rv: self.rv, res: key.res.clone(), ns: key.ns.clone(), etype, object, prev });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    fn refresh_crd(&mut self, name: &str) {
        match self.objects.get(&ObjKey::new(CRD_RES, "", name)).and_then(registry::from_crd) {
            Some(t) => {
                self.crd_types.insert(name.to_string(), t);
            }
            None => {
                self.crd_types.remove(name);
            }
        }
    }

    /// Subscribes to events after `from_rv`, or `None` if that resourceVersion was compacted away.
    pub fn subscribe(&self, from_rv: u64) -> Option<Subscription> {
        if from_rv < self.compacted {
            return None;
        }
        let backlog = self.history.iter().filter(|e| e.rv > from_rv).cloned().collect();
        Some(Subscription { backlog, rx: self.tx.subscribe(), rv: self.rv })
    }

    /// A receiver of all future events (used by the built-in controllers).
    pub fn events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Drops all history: every resourceVersion before now becomes too old to watch from.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }
}
