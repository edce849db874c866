//! The atoms of retries, hedging, limits and timings.

rustler::atoms! {
    retry, hedge, timings, max_in_flight, max_in_flight_per_host, queue_timeout,
    max_retries, methods, statuses, errors, base, max, max_retry_after, budget, refused, closed,
    ratio, min_per_sec, idempotent, delay, attempts, queued, headers, total,
    reused, remote_addr, in_flight, hosts, infinity,
}
