//! The private Chroma server on a copy of a folder (`chroma-dir://`): a process killed before
//! it cleaned up leaves its copy and its `chroma run` behind, and the next start removes both.
//! The process is real and really killed (SIGKILL, which no handler sees).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chatstore_chroma::LocalChroma;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The Chroma folder the child process copies.
const FOLDER: &str = "CHATSTORE_TEST_LOCAL_CHROMA_FOLDER";

/// Not a test of its own: the process `a_killed_process_leaves_nothing_behind_after_the_next_start`
/// starts and kills. It starts a private server on the folder and waits to be killed.
#[tokio::test]
#[ignore = "started by a_killed_process_leaves_nothing_behind_after_the_next_start"]
async fn local_chroma_process() {
    let Some(folder) = std::env::var_os(FOLDER) else {
        return;
    };
    let server = LocalChroma::start(Path::new(&folder))
        .await
        .expect("start the private Chroma");
    println!("READY {}", server.url());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

fn running(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The work folder of process `pid` in the temporary folder.
fn work_folder_of(pid: u32) -> Option<PathBuf> {
    let prefix = format!("chatstore-chroma-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_leaves_nothing_behind_after_the_next_start() {
    let source = tempfile::tempdir().expect("temp folder");
    // A Chroma folder, written by a real Chroma server.
    let Some(mut writer) = chatstore_testkit::PrivateChroma::start(source.path()).await else {
        return;
    };
    writer.stop();

    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "local_chroma_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(FOLDER, source.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the child process");
    let pid = child.id().expect("the child's pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(90), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("READY ") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "the child started its private Chroma");
    let work = work_folder_of(pid).expect("the child's copy");
    let server: u32 = std::fs::read_to_string(work.join("chroma.pid"))
        .expect("the recorded server pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(running(server));

    child.kill().await.expect("kill the child");
    assert!(work.exists(), "SIGKILL left the copy behind");
    assert!(running(server), "and its server, orphaned");

    let next = LocalChroma::start(source.path())
        .await
        .expect("the next start");
    assert!(!work.exists(), "the next start removed {}", work.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(server) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!running(server), "the orphaned server was stopped");
    // The copy of a process still running (this one's) is left alone.
    let kept = work_folder_of(std::process::id()).expect("this process's copy");
    let second = LocalChroma::start(source.path())
        .await
        .expect("a second server");
    assert!(kept.exists(), "a running process's copy is kept");
    drop(next);
    drop(second);
    assert_eq!(
        work_folder_of(std::process::id()),
        None,
        "a server's drop removes its own copy"
    );
}
