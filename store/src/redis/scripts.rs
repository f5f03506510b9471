//! The server-side scripts. Each is loaded once and called by SHA (`EVALSHA`); the redis crate
//! reloads a script when the server answers `NOSCRIPT` (after a restart or `SCRIPT FLUSH`).

use redis::Script;

macro_rules! with_json_prelude {
    ($file:literal) => {
        concat!(include_str!("lua/json.lua"), "\n", include_str!($file))
    };
}

pub struct Scripts {
    pub batch: Script,
    pub token: Script,
    pub lock: Script,
    pub replace_pool: Script,
    pub drop_pool: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self {
            batch: Script::new(with_json_prelude!("lua/batch.lua")),
            token: Script::new(with_json_prelude!("lua/token.lua")),
            lock: Script::new(include_str!("lua/lock.lua")),
            replace_pool: Script::new(include_str!("lua/replace_pool.lua")),
            drop_pool: Script::new(include_str!("lua/drop_pool.lua")),
        }
    }
}

/// A script call built like [`redis::ScriptInvocation`], but sendable in a pipeline (so that a
/// `WAIT` can follow it in the same round trip).
pub struct Call<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl<'a> Call<'a> {
    pub fn new(script: &'a Script) -> Self {
        Self { script, keys: Vec::new(), args: Vec::new() }
    }

    pub fn key<T: redis::ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    pub fn arg<T: redis::ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// `EVALSHA sha numkeys keys... args...`
    pub fn cmd(&self) -> redis::Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(self.script.get_hash()).arg(self.keys.len()).arg(&*self.keys).arg(&*self.args);
        c
    }

    /// Loads the script (after `NOSCRIPT`: a restarted or newly promoted server).
    pub async fn load(&self, conn: &mut impl redis::aio::ConnectionLike) -> redis::RedisResult<()> {
        self.script.prepare_invoke().load_async(conn).await.map(|_| ())
    }
}
