package io.jmigrate.memory;

import io.jmigrate.common.MigrationException;
import io.jmigrate.common.MigrationException.Category;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few Linux memory calls guest RAM needs, through the FFM API: anonymous {@code mmap} (lazily
 * faulted, as QEMU's {@code memory-backend-ram}), {@code madvise} (transparent huge pages,
 * populate for {@code prealloc}, drop), and {@code memfd_create} (QEMU's
 * {@code memory-backend-memfd}). Failures name the call, its arguments and {@code errno}.
 */
public final class Mmap {
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    public static final int MADV_DONTNEED = 4;
    public static final int MADV_HUGEPAGE = 14;
    public static final int MADV_NOHUGEPAGE = 15;
    /** Linux 5.14: fault every page in writable, without writing (prealloc). */
    public static final int MADV_POPULATE_WRITE = 23;
    public static final int MFD_CLOEXEC = 1;
    private static final int EINVAL = 22;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option ERRNO_OPT = Linker.Option.captureCallState("errno");
    private static final MethodHandle MMAP = handle("mmap", FunctionDescriptor.of(ValueLayout.ADDRESS,
            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
            ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
    private static final MethodHandle MUNMAP = handle("munmap", FunctionDescriptor.of(ValueLayout.JAVA_INT,
            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    private static final MethodHandle MADVISE = handle("madvise", FunctionDescriptor.of(ValueLayout.JAVA_INT,
            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
    private static final MethodHandle MEMFD_CREATE = handle("memfd_create", FunctionDescriptor.of(
            ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));

    private static final MethodHandle CLOSE = handle("close", FunctionDescriptor.of(ValueLayout.JAVA_INT,
            ValueLayout.JAVA_INT));

    private Mmap() {
    }

    private static MethodHandle handle(String name, FunctionDescriptor fd) {
        MemorySegment sym = LIBC.find(name).orElseThrow(() -> new IllegalStateException("libc has no " + name));
        return LINKER.downcallHandle(sym, fd, ERRNO_OPT);
    }

    /**
     * {@code size} bytes of private anonymous memory, zero and not yet faulted in (no RSS until
     * touched), unmapped when {@code arena} closes.
     */
    public static MemorySegment anonymous(long size, Arena arena) {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment state = tmp.allocate(CAPTURE);
            MemorySegment p = (MemorySegment) MMAP.invokeExact(state, MemorySegment.NULL, size,
                    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0L);
            if (p.address() == -1L) {
                throw new MigrationException(Category.CONFIG, "mmap of " + size + " bytes of anonymous guest RAM "
                        + "failed: errno " + errno(state));
            }
            long addr = p.address();
            return p.reinterpret(size, arena, s -> munmap(addr, size));
        } catch (MigrationException e) {
            throw e;
        } catch (Throwable t) {
            throw new MigrationException(Category.INTERNAL, "mmap: " + t, t);
        }
    }

    private static void munmap(long addr, long size) {
        try (Arena tmp = Arena.ofConfined()) {
            int r = (int) MUNMAP.invokeExact(tmp.allocate(CAPTURE), MemorySegment.ofAddress(addr), size);
            if (r != 0) {
                System.err.println("jmigrate: munmap of guest RAM at 0x" + Long.toHexString(addr) + " failed");
            }
        } catch (Throwable t) {
            System.err.println("jmigrate: munmap: " + t);
        }
    }

    /**
     * {@code madvise(seg, advice)}; returns 0, or the errno when the kernel refused (EINVAL for
     * an advice it does not know, e.g. MADV_POPULATE_WRITE before Linux 5.14).
     */
    public static int madvise(MemorySegment seg, int advice) {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment state = tmp.allocate(CAPTURE);
            int r = (int) MADVISE.invokeExact(state, seg, seg.byteSize(), advice);
            return r == 0 ? 0 : Math.max(1, errno(state));
        } catch (Throwable t) {
            throw new MigrationException(Category.INTERNAL, "madvise: " + t, t);
        }
    }

    /** Whether errno {@code e} from {@link #madvise} means "advice not supported here". */
    public static boolean unsupported(int e) {
        return e == EINVAL;
    }

    /** {@code memfd_create(name, MFD_CLOEXEC)}: a file descriptor of an anonymous memory file. */
    public static int memfdCreate(String name) {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment state = tmp.allocate(CAPTURE);
            int fd = (int) MEMFD_CREATE.invokeExact(state, tmp.allocateFrom(name), MFD_CLOEXEC);
            if (fd < 0) {
                throw new MigrationException(Category.CONFIG, "memfd_create(\"" + name + "\") failed: errno "
                        + errno(state));
            }
            return fd;
        } catch (MigrationException e) {
            throw e;
        } catch (Throwable t) {
            throw new MigrationException(Category.INTERNAL, "memfd_create: " + t, t);
        }
    }

    /** {@code close(fd)}; a failure is reported on stderr (nothing depends on it). */
    public static void close(int fd) {
        try (Arena tmp = Arena.ofConfined()) {
            int r = (int) CLOSE.invokeExact(tmp.allocate(CAPTURE), fd);
            if (r != 0) {
                System.err.println("jmigrate: close(" + fd + ") failed");
            }
        } catch (Throwable t) {
            System.err.println("jmigrate: close: " + t);
        }
    }

    private static int errno(MemorySegment state) {
        return (int) ERRNO.get(state, 0L);
    }
}
