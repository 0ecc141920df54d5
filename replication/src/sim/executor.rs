//! A deterministic executor: one thread, and at every step a seeded choice
//! of which task runs next. Every store call yields to it (see
//! [`yield_now`]), so a seed fixes one interleaving of every call, and the
//! same seed replays it exactly.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Gives the executor a chance to run another task.
pub fn yield_now() -> impl Future<Output = ()> + Send {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            // Wake at once: combinators such as FuturesUnordered poll only
            // the sub-futures that woke.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
    YieldNow(false)
}

pub type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Tasks that are all runnable whenever chosen: nothing here waits on
/// anything but [`yield_now`].
#[derive(Default)]
pub struct Executor {
    tasks: Vec<Task>,
}

impl Executor {
    pub fn spawn(&mut self, task: impl Future<Output = ()> + 'static) {
        self.tasks.push(Box::pin(task));
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Polls task `index` once, dropping it when done.
    pub fn step(&mut self, index: usize) {
        let mut cx = Context::from_waker(Waker::noop());
        if self.tasks[index].as_mut().poll(&mut cx).is_ready() {
            drop(self.tasks.swap_remove(index));
        }
    }
}
