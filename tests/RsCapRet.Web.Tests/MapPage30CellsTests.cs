using System.Text.Json;
using RsCapRet.Cli;
using RsCapRet.Core;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Issue 30 on the map page (tests/web/map30-cells.mjs in headless Chromium), over the demo mosaic ingested with
/// --cells by the shipped model: "where in the tile" sends localize=1, every result's hot cells are drawn inside its
/// footprint and over the selected one, and the heat map draws cells (cells=1). Screenshots are left beside the test
/// binary (map30-hot-1280.png, map30-heat-cells-1280.png).
/// </summary>
public sealed class MapPage30CellsTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-map30-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task LocalizedResultsAndCellHeatMapAreDrawnInHeadlessChromium()
    {
        var root = RepositoryPaths.FindRoot();
        await BrowserTools.AssertInstalledAsync(root);
        var model = Path.Combine(root, "models", "default");
        var gsd = RsCapRet.Model.RsCapRetConfig.Load(model).Gsd!.Value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var scene = Path.Combine(root, "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.tif");
        var ingest = await Run("ingest", scene, "--gsd", gsd, "--no-captions", "--cells", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(ingest.Code == 0, ingest.Out + ingest.Err);

        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        var prefix = Environment.GetEnvironmentVariable("RSCAPRET_MAP30_SCREENSHOTS") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "map30");
        string stdout;
        try
        {
            var (code, output, errors) = await TestProcess.RunAsync("node", [Path.Combine(root, "tests", "web", "map30-cells.mjs"), baseUrl, prefix, "storage tanks"],
                root, TimeSpan.FromSeconds(240));
            Assert.True(code == 0, $"tests/web/map30-cells.mjs failed (exit {code}):\n{errors}\n{output}");
            stdout = output;
        }
        finally { await app.StopAsync(); }

        using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var f = facts.RootElement;
        Assert.Equal(3, f.GetProperty("results").GetInt32());
        Assert.All(f.GetProperty("hotCellsFrom").EnumerateArray(), from => Assert.Equal("stored", from.GetString()));
        Assert.True(f.GetProperty("hotPaths").GetInt32() >= 3);
        Assert.Equal(f.GetProperty("hotPaths").GetInt32(), f.GetProperty("hotInsideFootprints").GetInt32());
        Assert.True(f.GetProperty("hotOverFootprints").GetBoolean());
        // Every tile in view has stored cells: all drawn by cell.
        Assert.Equal(f.GetProperty("heatTiles").GetInt32(), f.GetProperty("heatCellTiles").GetInt32());
        Assert.Equal(f.GetProperty("heatCellTiles").GetInt32() * 49, f.GetProperty("heatCellPaths").GetInt32());
        Assert.True(File.Exists(prefix + "-hot-1280.png") && File.Exists(prefix + "-heat-cells-1280.png"));
    }
}
