/**
 * `flock(2)` through `bun:ffi`: neither Bun nor Node exposes a kernel file lock, and it is the one lock the
 * kernel itself releases when its holder dies (by any signal, including SIGKILL), so no stale state can
 * outlive a process. libc is opened on first use, which also works inside a `bun build --compile` binary.
 */
import { dlopen, FFIType, read } from "bun:ffi";

const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
/** EWOULDBLOCK: another open file description holds the lock. */
const EWOULDBLOCK = process.platform === "darwin" ? 35 : 11;

function openLibc() {
  const darwin = process.platform === "darwin";
  const lib = dlopen(darwin ? "libSystem.B.dylib" : "libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    // Where this thread's errno lives (glibc and musl: __errno_location; macOS: __error).
    [darwin ? "__error" : "__errno_location"]: { args: [], returns: FFIType.ptr },
  });
  const errnoPointer = (lib.symbols as Record<string, () => unknown>)[darwin ? "__error" : "__errno_location"]!;
  return {
    flock: (fd: number, operation: number) => lib.symbols.flock(fd, operation) as number,
    errno: () => read.i32(errnoPointer() as Parameters<typeof read.i32>[0], 0),
  };
}

let libc: ReturnType<typeof openLibc> | undefined;

/**
 * Takes an exclusive lock on the open file `fd` without waiting. Returns false if another open file
 * description (in this or any other process) holds it. The lock lasts until `fd` is closed or the process ends.
 */
export function tryLockExclusive(fd: number): boolean {
  libc ??= openLibc();
  for (;;) {
    if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const errno = libc.errno();
    if (errno === EWOULDBLOCK) return false;
    if (errno !== EINTR) throw new Error(`flock failed with errno ${errno}`);
  }
}
