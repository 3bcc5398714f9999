using System.Text.Json;
using Hangfire.States;
using Hangfire.Storage;
using Hangfire.Storage.Monitoring;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>The README's main command on the shipped default model and bundled scenes, against a fresh database.</summary>
public sealed class DemoModelTests(TestDatabase db, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<TestDatabase>
{
    [Fact]
    public async Task DemoIngestsTheBundledScenesOnceAndAnswersTheExampleQueries()
    {
        var first = new StringWriter();
        var err = new StringWriter();
        Assert.Equal(0, await CliApp.RunAsync(["demo", "--device", "cpu", "--db", db.ConnectionString], first, err));
        var text = first.ToString();
        Assert.Contains("naip_m_4709963_se_14_1_20200831.tif: ingested, 20 tiles", text);
        // NAIP at 5 m is far coarser than the model's training imagery: tiled natively, and the demo says so.
        Assert.Contains("warning: 5 m/px is far coarser than the model's training range", text);
        Assert.Contains("quality: ", text);
        Assert.Contains("ucm_val_mosaic_epsg32610_0.3m.tif: ingested, 36 tiles", text); // one tile per mosaic cell at the model's GSD
        foreach (var q in DemoCommands.DemoQueries) Assert.Contains($"== search: \"{q}\" (top 3)", text);
        Assert.DoesNotContain("no tiles found", text);

        // The scenes were ingested by Hangfire jobs that the demo's own worker ran: the dashboard lists them as succeeded.
        var monitor = HangfireSetup.CreateStorage(db.ConnectionString).GetMonitoringApi();
        var scenes = Directory.GetFiles(Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes"), "*.tif");
        Assert.Equal(2, scenes.Length);
        foreach (var scene in scenes)
        {
            var job = Assert.Single(SucceededIngestJobs(monitor, scene));
            Assert.StartsWith("added: ingested", job.Value.Result?.ToString()?.Trim('"'));
            Assert.Contains(monitor.JobDetails(job.Key).History, h => h.StateName == ProcessingState.StateName
                && h.Data["ServerId"].StartsWith(RsCapRet.Jobs.InProcessWorker.ServerNamePrefix, StringComparison.OrdinalIgnoreCase));
        }
        Assert.DoesNotContain(monitor.Servers(), s => s.Name.StartsWith(RsCapRet.Jobs.InProcessWorker.ServerNamePrefix, StringComparison.OrdinalIgnoreCase));   // stopped with the demo
        var tiles = await TileCount();
        Assert.Equal(56L, tiles);   // 20 NAIP (5 x 4, flush edges) + 36 mosaic

        var second = new StringWriter();
        Assert.Equal(0, await CliApp.RunAsync(["demo", "--device", "cpu", "--db", db.ConnectionString], second, err));
        Assert.Contains("naip_m_4709963_se_14_1_20200831.tif: already ingested, 20 tiles", second.ToString());
        Assert.Contains("ucm_val_mosaic_epsg32610_0.3m.tif: already ingested, 36 tiles", second.ToString());
        // A second run queues a job per scene again; each finds its scene done and adds nothing.
        foreach (var scene in scenes)
        {
            var jobs = SucceededIngestJobs(monitor, scene);
            Assert.Equal(2, jobs.Count);
            Assert.Single(jobs, j => j.Value.Result?.ToString()?.Trim('"').StartsWith("unchanged: already ingested") == true);
        }
        Assert.Equal(tiles, await TileCount());
        Assert.DoesNotContain(monitor.Servers(), s => s.Name.StartsWith(RsCapRet.Jobs.InProcessWorker.ServerNamePrefix, StringComparison.OrdinalIgnoreCase));
    }

    private static List<KeyValuePair<string, SucceededJobDto>> SucceededIngestJobs(IMonitoringApi monitor, string scene) =>
        monitor.SucceededJobs(0, 100).Where(j => j.Value.Job?.Type == typeof(IngestSceneJob) && j.Value.Job.Args[0] as string == scene).ToList();

    private async Task<long> TileCount()
    {
        await using var cmd = db.DataSource.CreateCommand("SELECT count(*) FROM tiles");
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>
    /// Retrieval quality of the shipped model through the product path (ingest at the model's GSD, SQL search):
    /// one plain query per mosaic class, top 3 each. Chance is 1/12 of the hits (3 of 36); see the model card for
    /// the shipped model's per-query result (31 of 36).
    /// </summary>
    [Fact]
    public async Task ClassQueriesOnTheMosaicFindTheirClassFarAboveChance()
    {
        (string Query, string Class)[] queries =
        [
            ("an airport with airplanes", "airplane"), ("a baseball field", "baseballdiamond"), ("storage tanks", "storagetanks"),
            ("a dense residential area", "denseresidential"), ("a river with trees on both sides", "river"), ("a golf course", "golfcourse"),
            ("a beach", "beach"), ("a harbor with boats", "harbor"), ("a parking lot with cars", "parkinglot"), ("a freeway", "freeway"),
            ("tennis courts", "tenniscourt"), ("farmland", "agricultural"),
        ];
        var model = Path.Combine(RepositoryPaths.FindRoot(), "models", "default");
        var cells = MosaicCells().ToDictionary(c => (c.Row, c.Col), c => c.Class);
        Assert.Equal(queries.Select(q => q.Class).Order(), cells.Values.Distinct().Order());
        using var encoder = Inference.RsCapRetTileEncoder.Load(model, "cpu");
        var store = new Storage.CatalogStore(db.DataSource);
        var modelId = await store.RegisterModelAsync(encoder.Identity);
        var ingest = await new Pipeline.SceneIngestor(store, encoder).IngestAsync(Mosaic,
            new Pipeline.IngestOptions { Tiling = new Raster.TilingOptions { TargetGsd = RsCapRet.Model.RsCapRetConfig.Load(model).Gsd } });
        var report = new List<string>();
        var hitsOfClass = 0;
        foreach (var (query, expected) in queries)
        {
            var hits = await store.SearchAsync(encoder.EmbedText(query), 3, new Storage.SearchFilter(ModelId: modelId, SceneId: ingest.SceneId));
            var classes = hits.Select(h => cells[(h.GridRow, h.GridCol)]).ToList();
            Assert.Equal(3, classes.Count);
            hitsOfClass += classes.Count(c => c == expected);
            report.Add($"{query}: {string.Join(", ", classes)}");
        }
        output.WriteLine($"{hitsOfClass} of 36 top-3 hits from the query's class:\n{string.Join("\n", report)}");
        // 36 hits; chance gives 3. The shipped model (v7) gets 32 (v6 31, v5 26, v4 18); issue #13 requires 30.
        Assert.True(hitsOfClass >= 30, $"{hitsOfClass} of 36 top-3 hits from the query's class:\n{string.Join("\n", report)}");
    }

    [Fact]
    public void MosaicIndexDescribesEveryCell()
    {
        var cells = MosaicCells();
        Assert.Equal(36, cells.Select(c => (c.Row, c.Col)).Distinct().Count());
        Assert.All(cells.GroupBy(c => c.Class), g => Assert.Equal(3, g.Count()));
    }

    private static string Mosaic => Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.tif");

    /// <summary>The mosaic's cell index (.index.json beside the GeoTIFF).</summary>
    private static List<RsCapRet.Training.Datasets.MosaicCell> MosaicCells() =>
        JsonSerializer.Deserialize<List<RsCapRet.Training.Datasets.MosaicCell>>(File.ReadAllText(Path.ChangeExtension(Mosaic, ".index.json")))!;
}
