//! What several of the command's test files share.

#![allow(dead_code)]

/// Collections of a test's own prefix on the shared test PocketBase, which the `chatstore`
/// binary creates and, like any operator's store, keeps. Deleted when this is dropped, also
/// when the test fails, so the shared server does not pile up collections from run to run
/// (every schema change there slows down with their number).
pub struct PocketBasePrefix {
    /// `pocketbase://HOST:PORT?prefix=…`, for the binary.
    pub url: String,
    email: String,
    password: String,
}

impl PocketBasePrefix {
    /// A fresh prefix starting with `tag` on the server at `base` (`http://HOST:PORT`), with the
    /// test superuser from the environment.
    pub fn new(base: &str, tag: &str) -> PocketBasePrefix {
        let host = base.trim_start_matches("http://").trim_end_matches('/');
        let prefix = format!("{tag}{}_", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        PocketBasePrefix {
            url: format!("pocketbase://{host}?prefix={prefix}"),
            email: std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL").expect("email set"),
            password: std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD")
                .expect("password set"),
        }
    }
}

impl Drop for PocketBasePrefix {
    fn drop(&mut self) {
        let (url, email, password) = (self.url.clone(), self.email.clone(), self.password.clone());
        // A thread with a runtime of its own: the guard may be dropped inside a test's runtime.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else {
                return;
            };
            rt.block_on(async {
                // Opened as a throwaway store: its collections go with its last handle.
                if let Ok(store) = chatstore_registry::OpenOptions::new(&url)
                    .pocketbase_superuser(&email, &password)
                    .throwaway(true)
                    .open()
                    .await
                {
                    drop(store);
                }
            });
        });
        let _ = cleanup.join();
    }
}
