//! Which Python interpreter the harness runs (the SMTP sink, the cross-language client).

use std::path::Path;

/// The Python interpreter for test helpers: `$KG_PYTHON` when set and not empty; else the
/// workspace virtualenv `<workspace>/.venv/bin/python3` when it exists (the test script
/// creates it with the needed packages, such as `aiosmtpd`); else `python3` from `PATH`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("KG_PYTHON")
        && !p.trim().is_empty()
    {
        return p;
    }
    if let Some(workspace) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        let venv = workspace.join(".venv/bin/python3");
        if venv.is_file() {
            return venv.to_string_lossy().into_owned();
        }
    }
    "python3".to_owned()
}
