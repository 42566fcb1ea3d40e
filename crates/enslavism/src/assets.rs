//! The files a master serves over HTTP from its binary, on its own port and
//! on an attached server alike: the browser client and its source map.
//!
//! Both are built from `client/index.mjs` at compile time (see the crate's
//! `build.rs`), and carry a strong `ETag` from their bytes: every master
//! serving the same bundle gives the same tag, so browsers' copies stay valid
//! behind a load balancer and across restarts.

/// A file served by the master.
#[derive(Debug)]
#[non_exhaustive]
pub struct Asset {
    /// The request path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
    /// Its strong `ETag` (quoted).
    pub etag: &'static str,
}

/// `Cache-Control` of every asset: browsers keep it and revalidate it on each
/// use (answered 304 while unchanged), since an upgraded master serves a new
/// bundle under the same path.
pub const CACHE_CONTROL: &str = "no-cache";

/// The browser client, a minified classic script defining the globals
/// `MasterConnection` and `SlaveConnection`.
pub const CLIENT_SCRIPT: Asset = Asset {
    path: "/enslavism/client.js",
    content_type: "application/javascript; charset=utf-8",
    body: include_str!(concat!(env!("OUT_DIR"), "/client.js")),
    etag: env!("ENSLAVISM_CLIENT_SCRIPT_ETAG"),
};

/// The source map of [`CLIENT_SCRIPT`], which the script names: browsers'
/// developer tools show `client/index.mjs` (its text is in the map).
pub const CLIENT_SOURCE_MAP: Asset = Asset {
    path: "/enslavism/client.js.map",
    content_type: "application/json; charset=utf-8",
    body: include_str!(concat!(env!("OUT_DIR"), "/client.js.map")),
    etag: env!("ENSLAVISM_CLIENT_SOURCE_MAP_ETAG"),
};

/// Every asset.
pub const ALL: [&Asset; 2] = [&CLIENT_SCRIPT, &CLIENT_SOURCE_MAP];

/// The asset served at `path` (no query string), if any.
pub fn find(path: &str) -> Option<&'static Asset> {
    ALL.into_iter().find(|asset| asset.path == path)
}

impl Asset {
    /// True when a request's `If-None-Match` value names this asset's `ETag`
    /// (weakly or not) or is `*`: the answer is 304 Not Modified.
    pub fn not_modified(&self, if_none_match: &str) -> bool {
        if_none_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == self.etag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_found_by_path_only() {
        assert_eq!(find("/enslavism/client.js").map(|a| a.path), Some(CLIENT_SCRIPT.path));
        assert_eq!(find("/enslavism/client.js.map").map(|a| a.path), Some(CLIENT_SOURCE_MAP.path));
        assert!(find("/enslavism/client.js?v=1").is_none());
        assert!(find("/enslavism/").is_none());
    }

    #[test]
    fn if_none_match_lists_weak_tags_and_stars() {
        let etag = CLIENT_SCRIPT.etag;
        assert!(CLIENT_SCRIPT.not_modified(etag));
        assert!(CLIENT_SCRIPT.not_modified(&format!("\"other\", W/{etag}")));
        assert!(CLIENT_SCRIPT.not_modified("*"));
        assert!(!CLIENT_SCRIPT.not_modified("\"other\""));
        assert!(!CLIENT_SCRIPT.not_modified(CLIENT_SOURCE_MAP.etag));
    }

    #[test]
    fn the_script_names_its_map() {
        assert!(CLIENT_SCRIPT.body.ends_with("\n//# sourceMappingURL=client.js.map\n"));
        assert!(CLIENT_SOURCE_MAP.body.starts_with("{\"version\":3,"));
    }
}
