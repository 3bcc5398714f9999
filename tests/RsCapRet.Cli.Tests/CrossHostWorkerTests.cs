using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Npgsql;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// Runs only where network namespaces can be made (Linux, root or CAP_NET_ADMIN, iproute2 and util-linux's unshare);
/// elsewhere skipped with the reason.
/// </summary>
public sealed class NetworkNamespaceFactAttribute : FactAttribute
{
    public NetworkNamespaceFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "needs Linux network namespaces";
        else if (geteuid() != 0) Skip = "needs root (CAP_NET_ADMIN) to make a network namespace and a veth pair";
        else if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip")) Skip = "needs iproute2's ip";
        else if (!File.Exists("/usr/bin/unshare")) Skip = "needs util-linux's unshare";
    }

    [DllImport("libc")]
    private static extern uint geteuid();
}

/// <summary>
/// CrossHostWorkerTests' veth pair and namespace change the machine's network interfaces, which headless Chromium
/// reports to pages as net::ERR_NETWORK_CHANGED: its collection runs alone, never beside the browser tests of this
/// assembly (scripts/test.sh runs the test assemblies one after another for the same reason).
/// </summary>
[CollectionDefinition(nameof(NetworkChangingTests), DisableParallelization = true)]
public sealed class NetworkChangingTests;

/// <summary>
/// Hardening round two, item 8: a worker on another host — its own network namespace, a veth pair to this one, its
/// own host name (UTS namespace) — reaches PostgreSQL through a TCP forwarder on the host end of the pair. It loses its
/// network in the middle of a scene (link down inside its namespace); its claim cannot be checked by process, so a
/// run here waits for its lease (RSCAPRET_SCENE_LEASE_SECONDS=6) to lapse, takes the scene over — ending the cut-off
/// worker's open tile transaction on the server, which would otherwise block its tiles for hours — and completes it
/// with exactly its planned tiles. When the network comes back, the stale worker cannot commit anything.
/// </summary>
[Collection(nameof(NetworkChangingTests))]
public sealed class CrossHostWorkerTests(TestDatabase db, Xunit.Abstractions.ITestOutputHelper log) : IClassFixture<TestDatabase>, IDisposable
{
    /// <summary>50 x 50 tiles of the tiny model's 32 px in batches of 8: long enough to be cut off in the middle.</summary>
    private const int SceneSize = 1600;
    private const int LeaseSeconds = 6;

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-crosshost-");
    private readonly List<Process> _processes = [];
    private readonly string _suffix = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray())[..6];
    private string Namespace => $"rscapret-{_suffix}";
    private string HostEnd => $"rcr{_suffix}h";
    private string PeerEnd => $"rcr{_suffix}p";
    private string PeerHostName => $"peer-{_suffix}";

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); p.WaitForExit(10_000); }
            catch (InvalidOperationException) { }
        }
        RemoveNetwork();
        _dir.Delete(true);
    }

    /// <summary>Deleting the host end deletes its peer; the namespace goes with its name. Quiet when already gone.</summary>
    private void RemoveNetwork()
    {
        Ip(false, "link", "del", HostEnd);
        Ip(false, "netns", "del", Namespace);
    }

    private static string Ip(bool check, params string[] args)
    {
        var psi = new ProcessStartInfo("ip", args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        if (!p.WaitForExit(30_000)) { p.Kill(); throw new TimeoutException($"ip {string.Join(' ', args)} hung"); }
        if (check && p.ExitCode != 0) throw new InvalidOperationException($"ip {string.Join(' ', args)}: {output}");
        return output;
    }

    /// <summary>A /30 in 10.x.y.z that no interface of this host uses yet: (host end, peer end).</summary>
    private static (IPAddress Host, IPAddress Peer) FreeSubnet()
    {
        var used = Ip(true, "-4", "addr");
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var (b, c, d) = (Random.Shared.Next(200, 250), Random.Shared.Next(0, 256), Random.Shared.Next(0, 64) * 4);
            if (used.Contains($"10.{b}.{c}.")) continue;
            return (IPAddress.Parse($"10.{b}.{c}.{d + 1}"), IPAddress.Parse($"10.{b}.{c}.{d + 2}"));
        }
        throw new InvalidOperationException("no free 10.x.y.0/30 found");
    }

    private sealed record Run(Process Process, System.Text.StringBuilder Output)
    {
        public string Text { get { lock (Output) return Output.ToString(); } }
    }

    private Run Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment.Remove("RSCAPRET_DB");
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var run = new Run(p, new());
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (run.Output) run.Output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (run.Output) run.Output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return run;
    }

    private static async Task Finished(Run run, TimeSpan timeout, string what)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await run.Process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"{what} still running after {timeout}\n{run.Text}"); }
        run.Process.WaitForExit();
    }

    private static async Task Until(Func<Task<bool>> condition, TimeSpan timeout, Func<string> why)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(why());
            await Task.Delay(200);
        }
    }

    private async Task<T?> Scalar<T>(string sql, params object[] args)
    {
        await using var cmd = db.DataSource.CreateCommand(sql);
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        var value = await cmd.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }

    private async Task<(string? Status, Guid? Token, string? Host, long Tiles, long Distinct, int Skipped, DateTime? Updated)> SceneState(string scene)
    {
        await using var cmd = db.DataSource.CreateCommand("""
            SELECT s.status, s.claim_token, s.claim_host,
                   (SELECT count(*) FROM tiles t WHERE t.scene_id = s.id),
                   (SELECT count(DISTINCT (grid_row, grid_col)) FROM tiles t WHERE t.scene_id = s.id),
                   COALESCE(s.skipped_tiles, 0), s.updated_at
              FROM scenes s WHERE s.path = $1
            """);
        cmd.Parameters.Add(new() { Value = scene });
        await using var r = await cmd.ExecuteReaderAsync();
        if (!await r.ReadAsync()) return default;
        return (r.GetString(0), r.IsDBNull(1) ? null : r.GetGuid(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetInt64(3), r.GetInt64(4),
            r.GetInt32(5), r.IsDBNull(6) ? null : r.GetDateTime(6));
    }

    /// <summary>The server sessions whose open tile transaction belongs to claim <paramref name="token"/> (its advisory lock).</summary>
    private async Task<int[]> TileWriterSessions(Guid token)
    {
        var key = CatalogStore.TileWriterLock(token);
        await using var cmd = db.DataSource.CreateCommand("""
            SELECT COALESCE(array_agg(pid), '{}') FROM pg_locks
             WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2
            """);
        cmd.Parameters.Add(new() { Value = (long)(uint)(key >> 32) });
        cmd.Parameters.Add(new() { Value = (long)(uint)key });
        return (int[])(await cmd.ExecuteScalarAsync())!;
    }

    [NetworkNamespaceFact]
    public async Task AWorkerOnAnotherHostCutOffMidSceneIsTakenOverAndCannotCommitWhenItsNetworkReturns()
    {
        var scene = TestScenes.Cut(Path.Combine(_dir.FullName, "cut-off.tif"), SceneSize, 20);
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var rscapret = Path.Combine(AppContext.BaseDirectory, "rscapret");

        // The other host: a namespace with a veth pair to this one, a /30 of its own.
        var (hostAddress, peerAddress) = FreeSubnet();
        RemoveNetwork();
        Ip(true, "netns", "add", Namespace);
        Ip(true, "link", "add", HostEnd, "type", "veth", "peer", "name", PeerEnd);
        Ip(true, "link", "set", PeerEnd, "netns", Namespace);
        Ip(true, "addr", "add", $"{hostAddress}/30", "dev", HostEnd);
        Ip(true, "link", "set", HostEnd, "up");
        Ip(true, "-n", Namespace, "addr", "add", $"{peerAddress}/30", "dev", PeerEnd);
        Ip(true, "-n", Namespace, "link", "set", PeerEnd, "up");
        Ip(true, "-n", Namespace, "link", "set", "lo", "up");

        // PostgreSQL listens on loopback only: the other host reaches it through a forwarder on the host end.
        var local = new NpgsqlConnectionStringBuilder(db.ConnectionString);
        await using var forwarder = TcpForwarder.Start(new IPEndPoint(hostAddress, 0), local.Host!, local.Port);
        var remote = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Host = hostAddress.ToString(), Port = forwarder.Port }.ConnectionString;
        var lease = new Dictionary<string, string> { ["RSCAPRET_SCENE_LEASE_SECONDS"] = LeaseSeconds.ToString() };

        // The worker there, under its own host name, so its claim cannot be checked by process from here.
        var worker = Start("ip", ["netns", "exec", Namespace, "unshare", "--uts", "--", "sh", "-c", "hostname \"$0\" && exec \"$@\"", PeerHostName,
            "env", "--default-signal=INT", rscapret, "ingest", scene, "--model", model, "--device", "cpu", "--batch", "8"],
            new Dictionary<string, string>(lease) { ["RSCAPRET_DB"] = remote });
        // Mid-scene: claimed there, and its COPY has taken 1100 rows on the server — more than the 1000 rows of a binary
        // COPY the server buffers before it inserts them, so its uncommitted tiles hold keys in the unique index.
        await Until(async () => (await SceneState(scene)) is { Host: var h, Token: { } t } && h == PeerHostName &&
                                await Scalar<long>("SELECT COALESCE(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE pid = ANY($1)",
                                    await TileWriterSessions(t)) >= 1100,
            TimeSpan.FromSeconds(180), () => $"the worker never wrote tiles of its scene\n{worker.Text}");
        Assert.False(worker.Process.HasExited, $"the scene was done before the network could be cut\n{worker.Text}");

        // Cut off in the middle of the scene.
        Ip(true, "-n", Namespace, "link", "set", PeerEnd, "down");
        var cutAt = Stopwatch.StartNew();
        var held = await SceneState(scene);
        Assert.Equal("ingesting", held.Status);
        Assert.Equal(0, held.Tiles);   // its tiles so far are in its open transaction only
        // ...which the server keeps open (the forwarder's side of it is alive, as a cut-off client's would be for hours):
        // its uncommitted rows hold the scene's tile keys until it ends.
        Assert.Single(await TileWriterSessions(held.Token!.Value));

        // A run here waits for the lease to lapse, takes the scene over and completes it.
        var takeover = Start(rscapret, ["ingest", scene, "--model", model, "--device", "cpu", "--batch", "16", "--wait"],
            new Dictionary<string, string>(lease) { ["RSCAPRET_DB"] = db.ConnectionString });
        await Finished(takeover, TimeSpan.FromSeconds(240), "the run taking the scene over");
        var tookOver = cutAt.Elapsed;
        Assert.True(takeover.Process.ExitCode == 0, takeover.Text);
        Assert.Contains("taken over from process", takeover.Text);
        Assert.Contains($"on {PeerHostName} whose lease lapsed", takeover.Text);
        var done = await SceneState(scene);
        var planned = (SceneSize / 32) * (SceneSize / 32) - done.Skipped;
        Assert.Equal(("done", (long)planned, (long)planned), (done.Status, done.Tiles, done.Distinct));
        Assert.Equal(Environment.MachineName, done.Host);
        Assert.NotEqual(held.Token, done.Token);
        Assert.Empty(await TileWriterSessions(held.Token.Value));   // ended by the takeover
        Assert.False(worker.Process.HasExited, $"the cut-off worker ended while cut off\n{worker.Text}");

        // The network comes back: the stale worker finds its claim gone and ends without committing anything.
        Ip(true, "-n", Namespace, "link", "set", PeerEnd, "up");
        await Finished(worker, TimeSpan.FromSeconds(180), "the stale worker");
        Assert.NotEqual(0, worker.Process.ExitCode);
        Assert.DoesNotContain("   at ", worker.Text);
        Assert.Equal(done, await SceneState(scene));
        Assert.Empty(await TileWriterSessions(held.Token.Value));
        log.WriteLine($"cut off, taken over and completed in {tookOver.TotalSeconds:F1} s; the stale worker: {worker.Text.Trim().Split('\n')[^1]}");
    }
}

/// <summary>
/// Forwards TCP connections accepted on one address to another (both ways, byte for byte); a connection whose either
/// side closes or fails is closed on the other too.
/// </summary>
internal sealed class TcpForwarder : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private readonly List<TcpClient> _open = [];

    public int Port { get; }

    private TcpForwarder(IPEndPoint listen, string targetHost, int targetPort)
    {
        _listener = new TcpListener(listen);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = Task.Run(() => AcceptAsync(targetHost, targetPort));
    }

    public static TcpForwarder Start(IPEndPoint listen, string targetHost, int targetPort) => new(listen, targetHost, targetPort);

    private async Task AcceptAsync(string targetHost, int targetPort)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            _ = Task.Run(async () =>
            {
                using var target = new TcpClient();
                using (client)
                {
                    lock (_open) { _open.Add(client); _open.Add(target); }
                    try
                    {
                        await target.ConnectAsync(targetHost, targetPort, _stop.Token);
                        var up = Pump(client.GetStream(), target.GetStream());
                        var down = Pump(target.GetStream(), client.GetStream());
                        await Task.WhenAny(up, down);
                    }
                    catch (Exception) { }
                    // Either side gone: close both, as a dead peer's server session would be.
                    client.Close();
                    target.Close();
                }
            });
        }
    }

    private async Task Pump(NetworkStream from, NetworkStream to)
    {
        var buffer = new byte[81920];
        try
        {
            int n;
            while ((n = await from.ReadAsync(buffer, _stop.Token)) > 0)
            {
                await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
            }
        }
        catch (Exception) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_open) foreach (var c in _open) c.Close();
        await _accepting;
        _stop.Dispose();
    }
}
