using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Npgsql;

namespace RsCapRet.Bench;

/// <summary>
/// The machine a benchmark ran on, printed with its figures: cores, memory, runtimes and library versions, torch's
/// threads, PostgreSQL and pgvector where a database is used, and the load average before and after — a run on a
/// loaded machine should say so. Anything that cannot be read is reported as "not available".
/// </summary>
public sealed class BenchEnvironment
{
    private readonly List<(string Name, string? Value)> _entries = [];
    private readonly bool _torch;
    private readonly string _loadBefore;
    private string? _loadAfter;

    /// <summary>The process's minor page faults so far (/proc/self/stat field 10); -1 where it cannot be read.</summary>
    public static long MinorPageFaults()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[7], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }
    }

    private BenchEnvironment(bool torch)
    {
        _torch = torch;
        _loadBefore = LoadAverage();
        Add("cores", System.Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture));
        Add("cpu", CpuModel());
        Add("memory", MemTotal());
        Add("os", RuntimeInformation.OSDescription);
        Add(".NET", RuntimeInformation.FrameworkDescription);
        Add("server GC", System.Runtime.GCSettings.IsServerGC ? "yes" : "no");
        // Read by libtorch's OpenMP and MKL when they load: how its threads wait and how many there are.
        // ... and the C allocator the process runs on (a preloaded jemalloc or glibc tunables change large allocations).
        foreach (var name in new[] { "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "LD_PRELOAD", "GLIBC_TUNABLES" })
            Add(name, System.Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : "unset");
    }

    /// <summary>
    /// Starts the record (load average before). <paramref name="torch"/>: whether the benchmark uses libtorch (its
    /// threads and version are then reported; otherwise it is not loaded just to report it).
    /// <paramref name="connectionString"/>: a database whose PostgreSQL and pgvector versions to report.
    /// </summary>
    public static async Task<BenchEnvironment> CollectAsync(bool torch, string? connectionString = null)
    {
        var env = new BenchEnvironment(torch);
        if (torch)
        {
            env.Add("libtorch", TorchSharp.torch.__version__);
            env.Add("TorchSharp", typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(3));
        }
        if (connectionString is not null)
        {
            try
            {
                await using var conn = new NpgsqlConnection(connectionString);
                await conn.OpenAsync();
                await using (var v = new NpgsqlCommand("SHOW server_version", conn)) env.Add("PostgreSQL", (string?)await v.ExecuteScalarAsync());
                await using var ext = new NpgsqlCommand("SELECT extversion FROM pg_extension WHERE extname = 'vector'", conn);
                env.Add("pgvector", await ext.ExecuteScalarAsync() as string);
            }
            catch (NpgsqlException e)
            {
                env.Add("PostgreSQL", null);
                env.Add("pgvector", null);
                Console.Error.WriteLine($"environment: database versions not available ({e.Message})");
            }
        }
        return env;
    }

    public void Add(string name, string? value) => _entries.Add((name, value));

    /// <summary>Takes the load average after the run and the thread counts as the run left them.</summary>
    public void Finish()
    {
        _loadAfter ??= LoadAverage();
        if (_torch && !_entries.Any(e => e.Name == "torch threads"))
        {
            Add("torch threads", TorchSharp.torch.get_num_threads().ToString(CultureInfo.InvariantCulture));
            Add("torch interop threads", TorchSharp.torch.get_num_interop_threads().ToString(CultureInfo.InvariantCulture));
        }
    }

    public string Describe() =>
        "environment: " + string.Join("; ", _entries.Select(e => $"{e.Name} {e.Value ?? "not available"}")) +
        $"; load average (1, 5, 15 min) before {_loadBefore}, after {_loadAfter ?? "not taken"}";

    public JsonObject ToJson()
    {
        var o = new JsonObject();
        foreach (var (name, value) in _entries) o[name] = value;
        o["load average before"] = _loadBefore;
        o["load average after"] = _loadAfter;
        return o;
    }

    private static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "not available"; }
        catch (UnauthorizedAccessException) { return "not available"; }
    }

    private static string? CpuModel()
    {
        try { return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim(); }
        catch (IOException) { return null; }
    }

    private static string? MemTotal()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            return line is null ? null : FormattableString.Invariant($"{long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1e6:F1} GB");
        }
        catch (IOException) { return null; }
    }
}

/// <summary>
/// Peak resident memory (VmHWM). Linux lets a process reset its own peak (writing 5 to /proc/self/clear_refs), so
/// each side of a round gets its own peak; where that is refused the per-side peak is not available.
/// </summary>
public static class PeakRss
{
    /// <summary>Resets the peak to the current RSS; false when the kernel does not allow it.</summary>
    public static bool TryReset()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    public static long Peak() => Status("VmHWM:");

    public static long Current() => Status("VmRSS:");

    private static long Status(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"no {key} in /proc/self/status");
    }
}
