using System.Globalization;

namespace RsCapRet.Storage;

/// <summary>
/// The process that holds a scene claim, as recorded on the claim: host name, a key of its process namespace (the
/// kernel's boot id and the PID namespace, so PIDs of another container or an earlier boot are never compared), PID,
/// and start time (clock ticks since boot, from /proc/PID/stat). A process on the same host and namespace can tell
/// for certain whether the holder still runs: a PID that is gone, a zombie, or a PID reused by a process started at
/// another time is a dead holder, whose scene may be taken over at once.
/// </summary>
public sealed record ClaimHolder(string Host, string Namespace, int Pid, long ProcessStart)
{
    /// <summary>This process.</summary>
    public static ClaimHolder Current { get; } = new(Environment.MachineName, NamespaceKey(), Environment.ProcessId,
        StartOf(Environment.ProcessId) ?? 0);

    /// <summary>Whether processes of this host can be looked up (Linux /proc); elsewhere no holder is ever known dead.</summary>
    public static bool CanInspect => Current.ProcessStart > 0 && Current.Namespace.Length > 1;

    /// <summary>
    /// True only when <paramref name="holder"/> ran on this host, in this namespace, and no live process has its PID
    /// and start time; false whenever that cannot be known (another host, a claim recorded before holders were).
    /// </summary>
    public static bool IsKnownGone(ClaimHolder? holder)
    {
        if (holder is null || !CanInspect) return false;
        if (holder.Host != Current.Host || holder.Namespace != Current.Namespace) return false;
        if (holder.Pid == Current.Pid && holder.ProcessStart == Current.ProcessStart) return false;   // this very process
        return StartOf(holder.Pid) != holder.ProcessStart;
    }

    public override string ToString() => $"process {Pid} on {Host}";

    private static string NamespaceKey()
    {
        var boot = TryRead(() => File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim()) ?? "";
        var pidNamespace = TryRead(() => new FileInfo("/proc/self/ns/pid").LinkTarget) ?? "";
        return $"{boot}/{pidNamespace}";
    }

    /// <summary>The start time of a live process (field 22 of /proc/PID/stat); null when there is none, or it is a zombie.</summary>
    public static long? StartOf(int pid) => TryRead<long?>(() =>
    {
        var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');   // from field 3 (state) on: the name may hold spaces
        if (fields[0] is "Z" or "X") return null;
        return long.Parse(fields[19], CultureInfo.InvariantCulture);
    });

    private static T? TryRead<T>(Func<T?> read)
    {
        try { return read(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentException) { return default; }
    }
}
