using System.Diagnostics;
using System.Runtime.InteropServices;
using RsCapRet.Raster;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// Hardening round two, item 4 for `rscapret ingest`: a decode bomb among the scenes fails with one `error:` line
/// naming the file and the limit (its scene recorded failed with that reason, nothing decoded), and Ctrl-C reaches
/// GDAL in the middle of a tile's decoding instead of waiting for it to finish.
/// </summary>
public sealed partial class SceneDecodeBoundsCliTests(TestDatabase db, Xunit.Abstractions.ITestOutputHelper log) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-decode-cli-");
    private Process? _process;
    private string? _model;

    public void Dispose()
    {
        try { if (_process is { HasExited: false }) _process.Kill(entireProcessTree: true); _process?.WaitForExit(10_000); }
        catch (InvalidOperationException) { }
        _dir.Delete(true);
    }

    private string Model => _model ??= TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));

    private async Task<T?> Scalar<T>(string sql, params object[] args)
    {
        await using var cmd = db.DataSource.CreateCommand(sql);
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        var value = await cmd.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }

    [Fact]
    public async Task IngestingADecodeBombFailsWithOneLineNamingTheFileAndTheLimit()
    {
        // 12000 x 12000 px x 3 bands (140,625 tiles of the tiny model's 32 px: under the grid limit) in about 7 KB.
        var bomb = CraftedTiffs.SharedStrips(Path.Combine(_dir.FullName, "shared-strips.tif"), 12_000, 12_000, 3, rowsPerStrip: 16);
        var interleaved = CraftedTiffs.SharedStrips(Path.Combine(_dir.FullName, "bands-bomb.tif"), 7000, 7000, 4000, rowsPerStrip: 1);
        var sw = Stopwatch.StartNew();
        var (code, _, err) = await CliRunner.Run("ingest", bomb, interleaved, "--model", Model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(code == 2, err);
        var lines = err.Trim().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.StartsWith($"error: {bomb}: ", lines[0]);
        Assert.True(lines[0].Contains("more than the limit of 10,000") && lines[0].Contains(TilingOptions.MaxDecodeRatioVariable), err);
        Assert.StartsWith($"error: {interleaved}: ", lines[1]);
        Assert.True(lines[1].Contains("decodes all 4000 for every pixel, more than the limit of 64"), err);
        Assert.DoesNotContain("   at ", err);
        log.WriteLine($"{sw.Elapsed.TotalSeconds:F1} s (model load included):\n{err}");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"took {sw.Elapsed}");
        foreach (var path in new[] { bomb, interleaved })
        {
            Assert.Equal("failed", await Scalar<string>("SELECT status FROM scenes WHERE path = $1", path));
            Assert.Contains("more than the limit", await Scalar<string>("SELECT error FROM scenes WHERE path = $1", path));
        }
    }

    [Fact]
    public async Task CtrlCStopsAnIngestInTheMiddleOfDecodingATile()
    {
        // Every tile of this scene decodes tens of GB: 64 bands interleaved by pixel in strips 200000 px wide, read
        // through windows 64x coarser than native (2048 px of source for the tiny model's 32-px tiles). Within every
        // structural limit but the ratio, which the run lifts.
        var scene = CraftedTiffs.SharedStrips(Path.Combine(_dir.FullName, "slow-tiles.tif"), 200_000, 4096, 64, rowsPerStrip: 16);
        var psi = new ProcessStartInfo("env", ["--default-signal=INT", Path.Combine(AppContext.BaseDirectory, "rscapret"),
            "ingest", scene, "--model", Model, "--device", "cpu", "--gsd", "64"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["RSCAPRET_DB"] = db.ConnectionString;
        psi.Environment[TilingOptions.MaxDecodeRatioVariable] = "2000000000";
        var output = new System.Text.StringBuilder();
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        string Text() { lock (output) return output.ToString(); }

        // Into its scene (claimed, the grid described), then two seconds of work into the first tile (CPU time: on a
        // loaded machine two seconds of the clock may come before the decode has started).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (!(Text().Contains("tiles of") && await Scalar<string>("SELECT status FROM scenes WHERE path = $1", scene) == "ingesting"))
        {
            Assert.False(_process.HasExited || DateTime.UtcNow > deadline, $"the run never got into its scene\n{Text()}");
            await Task.Delay(100);
        }
        await ProcessWork.UntilBusyForAsync(_process, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(120), Text);
        Assert.False(_process.HasExited, Text());

        var sw = Stopwatch.StartNew();
        Assert.Equal(0, SendSignal(_process.Id, 2));
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60))) await _process.WaitForExitAsync(cts.Token);
        _process.WaitForExit();
        var stopped = sw.Elapsed;
        log.WriteLine($"stopped {stopped.TotalMilliseconds:F0} ms after SIGINT");
        // Without the cancellation reaching GDAL, the run would sit in the tile's read (about 26 GB: 128 strips of
        // 200000 px x 64 bands x 16 rows; the scene's ~190 tiles take hours) until the signal's grace period ran out and
        // ended it with "still busy", leaving its scene unreleased. So: no forced exit, and a generous deadline far
        // under the decode (a loaded machine makes the stop slower, not red).
        Assert.DoesNotContain("still busy", Text());
        Assert.True(stopped < TimeSpan.FromSeconds(60), $"stopped {stopped.TotalSeconds:F1} s after SIGINT\n{Text()}");
        Assert.Equal(130, _process.ExitCode);
        Assert.Contains($"error: {scene}: cancelled (SIGINT)", Text());
        Assert.Equal("cancelled (SIGINT)", await Scalar<string>("SELECT error FROM scenes WHERE path = $1", scene));
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
