//! Bulk operations for the transfer tools (migrate, export, init, verify): pipelined reads and
//! writes in chunks, and a SCAN-based dump of everything under the prefix. These run off the
//! request path, so `SCAN` is acceptable here (never `KEYS`).

use std::collections::{BTreeMap, BTreeSet};

use super::link::Conn;

use super::RedisStore;
use crate::error::Result;
use crate::time::epoch_ms;

/// Commands per pipeline round trip: large enough to amortise latency, small enough to stay
/// well inside the command timeout.
const CHUNK: usize = 1000;

/// One command of a bulk write.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkWrite {
    Set {
        key: String,
        value: String,
    },
    /// `SET … PXAT`: expires at an absolute epoch-ms time (sessions keep their end time).
    SetAt {
        key: String,
        value: String,
        expires_at_ms: i64,
    },
    Del {
        key: String,
    },
    HSet {
        key: String,
        fields: Vec<(String, String)>,
    },
    SAdd {
        key: String,
        member: String,
    },
}

impl BulkWrite {
    fn add_to(&self, pipe: &mut redis::Pipeline) {
        match self {
            Self::Set { key, value } => pipe.cmd("SET").arg(key).arg(value).ignore(),
            Self::SetAt { key, value, expires_at_ms } => {
                pipe.cmd("SET").arg(key).arg(value).arg("PXAT").arg(*expires_at_ms).ignore()
            }
            Self::Del { key } => pipe.cmd("DEL").arg(key).ignore(),
            Self::HSet { key, fields } if fields.is_empty() => pipe.cmd("EXISTS").arg(key).ignore(),
            Self::HSet { key, fields } => {
                let c = pipe.cmd("HSET").arg(key);
                for (f, v) in fields {
                    c.arg(f).arg(v);
                }
                c.ignore()
            }
            Self::SAdd { key, member } => pipe.cmd("SADD").arg(key).arg(member).ignore(),
        };
    }
}

/// A key's value as dumped.
#[derive(Debug, Clone, PartialEq)]
pub enum DumpValue {
    String(String),
    Hash(BTreeMap<String, String>),
    Set(BTreeSet<String>),
    /// A type poolgate never writes (list, zset, stream …): only its type is recorded.
    Other(String),
}

/// One dumped key: its value and absolute expiry (epoch ms) if it has a TTL.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpEntry {
    pub value: DumpValue,
    pub expires_at_ms: Option<i64>,
}

/// Escapes glob characters so a prefix matches literally in `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

impl RedisStore {
    fn bulk_conn(&self) -> Result<Conn> {
        self.conn()
    }

    async fn run_pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut c = self.bulk_conn()?;
        self.shared.link.count_command();
        pipe.query_async(&mut c).await.map_err(|e| self.shared.link.fail(e))
    }

    /// Writes `items` in pipelined chunks; each chunk is one `MULTI/EXEC`, so an item (all of its
    /// commands) is applied entirely or not at all. `done(n)` is told after each chunk.
    pub async fn write_items(&self, items: &[Vec<BulkWrite>], done: &mut (dyn FnMut(usize) + Send)) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let (mut cmds, mut pending) = (0usize, 0usize);
        for item in items {
            for w in item {
                w.add_to(&mut pipe);
            }
            cmds += item.len();
            pending += 1;
            if cmds >= CHUNK {
                self.run_pipe::<()>(&pipe).await?;
                done(pending);
                pipe = redis::pipe();
                pipe.atomic();
                (cmds, pending) = (0, 0);
            }
        }
        if pending > 0 {
            self.run_pipe::<()>(&pipe).await?;
            done(pending);
        }
        Ok(())
    }

    /// One boolean per key: does it exist.
    pub async fn exists_each(&self, keys: &[String]) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("EXISTS").arg(k);
            }
            let n: Vec<i64> = self.run_pipe(&pipe).await?;
            out.extend(n.into_iter().map(|n| n > 0));
        }
        Ok(out)
    }

    /// String values of `keys` (`None` when missing), by `MGET` chunks.
    pub async fn get_each(&self, keys: &[String]) -> Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let v: Vec<Option<String>> = self.query(redis::cmd("MGET").arg(chunk)).await?;
            out.extend(v);
        }
        Ok(out)
    }

    /// Every field of each hash (empty map when missing).
    pub async fn hgetall_each(&self, keys: &[String]) -> Result<Vec<BTreeMap<String, String>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("HGETALL").arg(k);
            }
            let v: Vec<BTreeMap<String, String>> = self.run_pipe(&pipe).await?;
            out.extend(v);
        }
        Ok(out)
    }

    /// Members of a set (empty when missing).
    pub async fn set_members(&self, key: &str) -> Result<BTreeSet<String>> {
        self.query(redis::cmd("SMEMBERS").arg(key)).await
    }

    /// Field names of a hash (empty when missing).
    pub async fn hash_fields(&self, key: &str) -> Result<BTreeSet<String>> {
        self.query(redis::cmd("HKEYS").arg(key)).await
    }

    /// Absolute expiry (epoch ms) of each key, `None` for keys without a TTL or missing keys.
    pub async fn expiry_each(&self, keys: &[String]) -> Result<Vec<Option<i64>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("PTTL").arg(k);
            }
            let now = epoch_ms();
            let v: Vec<i64> = self.run_pipe(&pipe).await?;
            out.extend(v.into_iter().map(|ms| (ms >= 0).then_some(now + ms)));
        }
        Ok(out)
    }

    /// Every key under the prefix whose remainder matches the glob `rest` (`*` for all), sorted.
    pub async fn scan_prefixed(&self, rest: &str) -> Result<Vec<String>> {
        let pattern = format!("{}{rest}", glob_escape(self.shared.keys.prefix()));
        let mut cursor: u64 = 0;
        let mut keys = BTreeSet::new();
        loop {
            let cmd = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(CHUNK).clone();
            let mut c = self.bulk_conn()?;
            self.shared.link.count_command();
            // In a cluster: on the node holding our slot (every key of ours is there).
            let (next, batch): (u64, Vec<String>) =
                c.query_on_slot(&cmd, self.shared.link.slot()).await.map_err(|e| self.shared.link.fail(e))?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys.into_iter().collect());
            }
            cursor = next;
        }
    }

    /// Everything under the prefix: each key's value and expiry (for verification and tests).
    pub async fn dump(&self) -> Result<BTreeMap<String, DumpEntry>> {
        let keys = self.scan_prefixed("*").await?;
        let mut types: Vec<String> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(CHUNK) {
            let mut pipe = redis::pipe();
            for k in chunk {
                pipe.cmd("TYPE").arg(k);
            }
            let t: Vec<String> = self.run_pipe(&pipe).await?;
            types.extend(t);
        }
        let expiries = self.expiry_each(&keys).await?;
        let mut out = BTreeMap::new();
        for ((key, ty), expires_at_ms) in keys.into_iter().zip(types).zip(expiries) {
            let value = match ty.as_str() {
                "string" => self.query::<Option<String>>(redis::cmd("GET").arg(&key)).await?.map(DumpValue::String),
                "hash" => Some(DumpValue::Hash(self.query(redis::cmd("HGETALL").arg(&key)).await?)),
                "set" => Some(DumpValue::Set(self.set_members(&key).await?)),
                "none" => None, // expired or deleted between SCAN and TYPE
                other => Some(DumpValue::Other(other.to_string())),
            };
            if let Some(value) = value {
                out.insert(key, DumpEntry { value, expires_at_ms });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_match_literally() {
        assert_eq!(super::glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }
}
