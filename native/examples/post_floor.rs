//! What reqwest and tokio alone cost per request, without the BEAM or
//! the NIF: `N` POSTs of 10 bytes, one at a time, each spawned onto a
//! two-worker runtime from a thread outside it and awaited there (the
//! shape of a sync `erqwest:req/2`). Run it under
//! `valgrind --tool=callgrind` with two values of `N`: the difference of
//! the instruction totals over the difference of `N` is the cost of one
//! request (bench/README.md, "Where one request's time goes").
//!
//! Usage: `post_floor URL N [WORKER_THREADS]` (2 by default, as erqwest).

use std::sync::mpsc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: post_floor URL N")?;
    let n: usize = args.next().ok_or("usage: post_floor URL N")?.parse()?;
    let threads: usize = args.next().map_or(Ok(2), |t| t.parse())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    // erqwest installs ring as rustls's provider the same way.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build()?;
    let (tx, rx) = mpsc::channel();
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        let c = client.clone();
        let u = url.clone();
        let tx = tx.clone();
        rt.spawn(async move {
            let r = async { c.post(u).body("0123456789").send().await?.bytes().await }.await;
            let _ = tx.send(r.map(|b| b.len()));
        });
        let len = rx.recv()??;
        if len != 10 {
            return Err(format!("body of {len} bytes").into());
        }
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / n as f64;
    eprintln!("{n} requests, {us:.1} us each");
    Ok(())
}
