using System.Diagnostics;
using RsCapRet.Core;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// The commands a new user types, run verbatim from a fresh shell: the `./rscapret` launcher at the repository root
/// (database from the local env file, RSCAPRET_DB unset), the search the demo suggests, relative paths from another
/// directory, and `dotnet run --project`.
/// </summary>
public sealed class LauncherTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dataDir = Directory.CreateTempSubdirectory("rscapret-launcher-");
    private static readonly string Root = RepositoryPaths.FindRoot();

    public void Dispose() => _dataDir.Delete(true);

    /// <summary>
    /// `bash -c SCRIPT` in <paramref name="directory"/> with only PATH, HOME and the .NET location of this process's
    /// environment: no RSCAPRET_DB. The local env file is the test database's, in a data folder of its own
    /// (RSCAPRET_DATA_DIR, as scripts/db.sh writes it), so the checkout's own .data/ is neither used nor touched.
    /// </summary>
    private (int ExitCode, string Output) FreshShell(string script, string directory)
    {
        File.WriteAllText(Path.Combine(_dataDir.FullName, "db.env"), $"export RSCAPRET_DB='{db.ConnectionString}'\n");
        var psi = new ProcessStartInfo("bash", ["-c", script])
        {
            WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment.Clear();
        foreach (var name in new[] { "PATH", "HOME", "DOTNET_ROOT", "DOTNET_CLI_HOME", "NUGET_PACKAGES", "TMPDIR" })
            if (Environment.GetEnvironmentVariable(name) is { } value) psi.Environment[name] = value;
        psi.Environment["RSCAPRET_DATA_DIR"] = _dataDir.FullName;
        psi.Environment["RSCAPRET_DEVICE"] = "cpu";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(entireProcessTree: true); throw new TimeoutException($"{script}\n{stdout}"); }
        return (p.ExitCode, stdout + stderr.Result);
    }

    [Fact]
    public void TheLauncherRunsFromTheRepositoryRootWithTheLocalDatabase()
    {
        var help = FreshShell("./rscapret --help", Root);
        Assert.True(help.ExitCode == 0, help.Output);
        Assert.Contains("ingest", help.Output);

        var status = FreshShell("./rscapret db status", Root);
        Assert.True(status.ExitCode == 0, status.Output);
        Assert.Contains($"database {new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString).Database} ", status.Output);

        // The search line of the demo's "== next" block, as printed (comment and all).
        var search = FreshShell("""./rscapret search "storage tanks" --bbox -122.5,37.6,-122.3,37.9 --k 5   # add --format geojson for GeoJSON""", Root);
        Assert.True(search.ExitCode == 0, search.Output);
    }

    [Fact]
    public void RelativePathsMeanTheCallersDirectory()
    {
        var inspect = FreshShell("../rscapret inspect scenes/naip_m_4709963_se_14_1_20200831.tif", Path.Combine(Root, "samples"));
        Assert.True(inspect.ExitCode == 0, inspect.Output);
        Assert.Contains("EPSG:26914", inspect.Output);

        // The Web SDK would start `dotnet run` in the project folder; the CLI's relative paths are the caller's.
        var configuration = AppContext.BaseDirectory.Contains("/Debug/", StringComparison.Ordinal) ? "Debug" : "Release";
        var run = FreshShell($"dotnet run --project src/RsCapRet.Cli -c {configuration} --no-build -- inspect samples/scenes/naip_m_4709963_se_14_1_20200831.tif", Root);
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Contains("EPSG:26914", run.Output);
    }
}
