using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// The scripts honour RSCAPRET_DATA_DIR and RSCAPRET_PG_PORT (README, Configuration): scripts/demo.sh, with bootstrap
/// inside it, makes and uses a cluster of its own in a fresh data folder on a free port, and leaves the checkout's
/// .data/ alone. The data folder is given relative to the caller's directory (the temp folder), which is what a
/// relative RSCAPRET_DATA_DIR means; the CLI and scripts/db.sh then find the same cluster from its absolute path.
/// </summary>
public sealed class ScriptEnvironmentTests : IAsyncLifetime
{
    private static readonly string Root = RepositoryPaths.FindRoot();
    private static readonly string TempDir = Path.GetTempPath();
    private readonly string _name = "rscapret-scripts-" + Guid.NewGuid().ToString("N")[..10];
    private readonly int _port = FreePort();

    /// <summary>Where the data folder must be: the relative name read against the caller's directory.</summary>
    private string DataDir => Path.Combine(TempDir, _name);

    private static int FreePort()
    {
        int port;
        do port = LoopbackPorts.Free(); while (port is 55432 or 55433);   // the default cluster's and its replica's
        return port;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>Stops the cluster and deletes its folder, also where a broken script put it (the checkout).</summary>
    public async Task DisposeAsync()
    {
        foreach (var dir in new[] { DataDir, Path.Combine(Root, _name) }.Where(Directory.Exists))
        {
            try
            {
                if (File.Exists(Path.Combine(dir, "pg", "PG_VERSION")))
                    await RunAsync("bash", [Path.Combine(Root, "scripts", "db.sh"), "stop"], TempDir, dir, TimeSpan.FromMinutes(3));
            }
            finally { Directory.Delete(dir, recursive: true); }
        }
    }

    /// <summary>
    /// <paramref name="file"/> in <paramref name="directory"/> with this process's environment less every RSCAPRET_*
    /// variable (so no RSCAPRET_DB), plus RSCAPRET_DATA_DIR=<paramref name="dataDir"/>, RSCAPRET_PG_PORT=<paramref name="port"/>
    /// (default: the test's port; 0: unset) and RSCAPRET_DEVICE=cpu; both output streams read as they come, killed after
    /// the timeout.
    /// </summary>
    private async Task<(int Code, string Output)> RunAsync(string file, string[] args, string directory, string dataDir, TimeSpan timeout, int? port = null)
    {
        var psi = new ProcessStartInfo(file, args)
        {
            WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("RSCAPRET_", StringComparison.Ordinal)).ToList())
            psi.Environment.Remove(name);
        psi.Environment["RSCAPRET_DATA_DIR"] = dataDir;
        if ((port ?? _port) is var p and > 0) psi.Environment["RSCAPRET_PG_PORT"] = p.ToString(CultureInfo.InvariantCulture);
        psi.Environment["RSCAPRET_DEVICE"] = "cpu";
        using var process = Process.Start(psi)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, $"{file} {string.Join(' ', args)}: timed out after {timeout.TotalMinutes} min\n{await output}\n{await errors}");
        }
        return (process.ExitCode, $"{await output}\n-- stderr --\n{await errors}");
    }

    /// <summary>Content and write time of a file of the checkout's .data/, or null where there is none.</summary>
    private static (string Content, DateTime Written)? Snapshot(string name)
    {
        var path = Path.Combine(Root, ".data", name);
        return File.Exists(path) ? (File.ReadAllText(path), File.GetLastWriteTimeUtc(path)) : null;
    }

    [Fact]
    public async Task TheDemoMakesAndUsesAClusterInRsCapRetDataDirOnRsCapRetPgPortAndLeavesTheCheckoutsDataAlone()
    {
        var (defaultEnv, defaultPassword) = (Snapshot("db.env"), Snapshot("db.password"));
        Assert.False(Directory.Exists(DataDir));

        // A loaded 2-core machine: bootstrap (all steps already done), initdb, migrations, the model and two scenes.
        var demo = await RunAsync("bash", [Path.Combine(Root, "scripts", "demo.sh")], TempDir, _name, TimeSpan.FromMinutes(15));

        Assert.True(demo.Code == 0, $"scripts/demo.sh exited {demo.Code}:\n{demo.Output}");
        foreach (var q in DemoCommands.DemoQueries) Assert.Contains($"== search: \"{q}\" (top 3)", demo.Output);
        var ingested = Regex.Matches(demo.Output, @"\.tif: ingested, (\d+) tiles").Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.True(ingested.Count == 2, demo.Output);   // the two bundled scenes, into the new cluster's empty catalogue
        Assert.DoesNotContain("no tiles found", demo.Output);

        // The cluster, its env file and bootstrap's logs are in the data folder; the cluster listens on the port given.
        Assert.False(Directory.Exists(Path.Combine(Root, _name)), "the relative data folder was read against the checkout");
        Assert.True(File.Exists(Path.Combine(DataDir, "pg", "PG_VERSION")), $"no cluster in {DataDir}");
        Assert.Contains($";Port={_port};", await File.ReadAllTextAsync(Path.Combine(DataDir, "db.env")));
        Assert.Equal(_port.ToString(CultureInfo.InvariantCulture),
            (await File.ReadAllLinesAsync(Path.Combine(DataDir, "pg", "postmaster.pid")))[3].Trim());   // line 4: the port
        Assert.True(File.Exists(Path.Combine(DataDir, "restore.log")), "bootstrap's restore log is not in the data folder");

        // Nothing of it went to the checkout's .data/: the default cluster's env file and password are as they were.
        Assert.Equal(defaultEnv, Snapshot("db.env"));
        Assert.Equal(defaultPassword, Snapshot("db.password"));

        // The CLI itself (no launcher, RSCAPRET_DB unset) takes db.env from RSCAPRET_DATA_DIR: the demo's catalogue.
        var status = await RunAsync(Path.Combine(AppContext.BaseDirectory, "rscapret"), ["db", "status"], Root, DataDir, TimeSpan.FromMinutes(3));
        Assert.True(status.Code == 0, status.Output);
        Assert.True(status.Output.Contains($"server: 127.0.0.1:{_port} database rscapret ", StringComparison.Ordinal), status.Output);
        Assert.True(status.Output.Contains($"scenes done 2, {ingested.Sum()} tiles", StringComparison.Ordinal), status.Output);

        // scripts/db.sh without RSCAPRET_PG_PORT uses the port the cluster was made with; another port is refused.
        var dbScript = Path.Combine(Root, "scripts", "db.sh");
        var db = await RunAsync("bash", [dbScript, "status"], Root, DataDir, TimeSpan.FromMinutes(3), port: 0);
        Assert.True(db.Code == 0, db.Output);
        Assert.Contains($"running on 127.0.0.1:{_port}", db.Output);
        var other = FreePort();
        var refused = await RunAsync("bash", [dbScript, "start"], Root, DataDir, TimeSpan.FromMinutes(3), port: other == _port ? other + 1 : other);
        Assert.True(refused.Code == 1, refused.Output);
        Assert.Contains($"was created on port {_port}", refused.Output);
    }
}
