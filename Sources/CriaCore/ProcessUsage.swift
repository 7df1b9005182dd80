import Foundation

/// This process's resource counters (getrusage), for benchmarks and run summaries.
public enum ProcessUsage {
    private static var usage: rusage {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return usage
    }

    /// Peak resident set size so far, in MB (Linux reports ru_maxrss in KB, macOS in bytes).
    public static var peakResidentMegabytes: Double {
        #if os(Linux)
        return Double(usage.ru_maxrss) / 1024
        #else
        return Double(usage.ru_maxrss) / 1_048_576
        #endif
    }

    /// User plus system CPU seconds, all threads.
    public static var cpuSeconds: Double {
        let usage = self.usage
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
    }

    /// Minor page faults so far.
    public static var minorFaults: Double { Double(usage.ru_minflt) }
}
