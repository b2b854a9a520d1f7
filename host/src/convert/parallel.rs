//! [`ordered_map`]: converts the records of one input on several threads and stores them in
//! input order, so the output of a conversion is the same with one thread or many. The input is
//! read on its own thread, records travel in batches over bounded channels (at most
//! `2 × threads` batches in flight), and the caller's thread stores results as they come back,
//! reordered by batch number.

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;

/// One conversion thread per CPU core (the default of `convert` and live conversion).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Records per batch: large enough that channel traffic is noise, small enough that a batch of
/// big pings stays a few MB.
const BATCH: usize = 64;

/// Reads `input` on one thread, maps every item with `convert` on `threads` threads and hands
/// each item with its result to `store` on the calling thread, in input order. Stops at the first
/// error of `input` or `store` (what was read after it is dropped) and returns the input iterator
/// (e.g. to ask a reader what it skipped). With `threads <= 1` everything runs on the calling
/// thread.
pub fn ordered_map<I, T, R, E>(
    threads: usize,
    mut input: I,
    convert: impl Fn(&T) -> R + Sync,
    mut store: impl FnMut(T, R) -> Result<(), E>,
) -> Result<I, E>
where
    I: Iterator<Item = Result<T, E>> + Send,
    T: Send,
    R: Send,
    E: Send,
{
    if threads <= 1 {
        for item in input.by_ref() {
            let item = item?;
            let result = convert(&item);
            store(item, result)?;
        }
        return Ok(input);
    }
    let (work_tx, work_rx) = sync_channel::<(u64, Vec<T>)>(threads * 2);
    let (done_tx, done_rx) = sync_channel::<(u64, Vec<(T, R)>)>(threads * 2);
    let work_rx = Mutex::new(work_rx);
    let (work_rx, convert) = (&work_rx, &convert);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> (I, Option<E>) {
            let mut batch = Vec::with_capacity(BATCH);
            let mut number = 0;
            let mut error = None;
            for item in input.by_ref() {
                match item {
                    Ok(item) => batch.push(item),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if work_tx.send((number, full)).is_err() {
                        return (input, error); // the storing side stopped
                    }
                    number += 1;
                }
            }
            if !batch.is_empty() {
                let _ = work_tx.send((number, batch));
            }
            (input, error)
        });
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                while let Some((number, batch)) = next(work_rx) {
                    let results = batch
                        .into_iter()
                        .map(|item| {
                            let result = convert(&item);
                            (item, result)
                        })
                        .collect();
                    if done_tx.send((number, results)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let stored = store_in_order(&done_rx, &mut store);
        // Unblock and stop the other threads before joining them.
        drop(done_rx);
        while next(work_rx).is_some() {}
        let (input, read_error) = reader
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        stored?;
        match read_error {
            Some(e) => Err(e),
            None => Ok(input),
        }
    })
}

fn next<T>(work: &Mutex<Receiver<T>>) -> Option<T> {
    work.lock().unwrap_or_else(|e| e.into_inner()).recv().ok()
}

/// Stores batches as they arrive, holding back any that come before their predecessors.
fn store_in_order<T, R, E>(
    done: &Receiver<(u64, Vec<(T, R)>)>,
    store: &mut impl FnMut(T, R) -> Result<(), E>,
) -> Result<(), E> {
    let mut waiting = BTreeMap::new();
    let mut expected = 0;
    for (number, batch) in done.iter() {
        waiting.insert(number, batch);
        while let Some(batch) = waiting.remove(&expected) {
            for (item, result) in batch {
                store(item, result)?;
            }
            expected += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order_with_any_thread_count() {
        for threads in [1, 2, 3, 8] {
            let input = (0..1000u64).map(Ok::<u64, String>);
            let mut seen = Vec::new();
            let rest = ordered_map(
                threads,
                input,
                |n| n * n,
                |n, sq| {
                    seen.push((n, sq));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(rest.count(), 0, "the input is read to its end");
            let expected: Vec<(u64, u64)> = (0..1000).map(|n| (n, n * n)).collect();
            assert_eq!(seen, expected, "{threads} threads");
        }
    }

    #[test]
    fn a_read_or_store_error_stops_the_run() {
        let input = (0..1000u64).map(|n| {
            if n == 500 {
                Err(format!("bad {n}"))
            } else {
                Ok(n)
            }
        });
        let mut stored = 0;
        let err = ordered_map(
            2,
            input,
            |n| *n,
            |_, _| {
                stored += 1;
                Ok(())
            },
        )
        .err();
        assert_eq!(err.as_deref(), Some("bad 500"));
        assert!(stored <= 500, "{stored}");
        let input = (0..1000u64).map(Ok::<u64, String>);
        let err = ordered_map(
            2,
            input,
            |n| *n,
            |n, _| {
                if n == 100 {
                    Err("full".to_owned())
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(err.err().as_deref(), Some("full"));
    }
}
