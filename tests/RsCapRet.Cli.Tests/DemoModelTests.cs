using System.Text.Json;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>The README's main command on the shipped default model and bundled scenes, against a fresh database.</summary>
public sealed class DemoModelTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    [Fact]
    public async Task DemoIngestsTheBundledScenesOnceAndAnswersTheExampleQueries()
    {
        var first = new StringWriter();
        var err = new StringWriter();
        Assert.Equal(0, await CliApp.RunAsync(["demo", "--device", "cpu", "--db", db.ConnectionString], first, err));
        var text = first.ToString();
        Assert.Contains("naip_m_4709963_se_14_1_20200831.tif: ingested, 79 tiles", text);
        Assert.Contains("ucm_val_mosaic_epsg32610_0.3m.tif: ingested, 36 tiles", text); // one tile per mosaic cell at the model's GSD
        foreach (var q in DemoCommands.DemoQueries) Assert.Contains($"== search: \"{q}\" (top 3)", text);
        Assert.DoesNotContain("no tiles found", text);

        var second = new StringWriter();
        Assert.Equal(0, await CliApp.RunAsync(["demo", "--device", "cpu", "--db", db.ConnectionString], second, err));
        Assert.Contains("naip_m_4709963_se_14_1_20200831.tif: already ingested", second.ToString());
        Assert.Contains("ucm_val_mosaic_epsg32610_0.3m.tif: already ingested", second.ToString());
    }

    [Fact]
    public void MosaicIndexDescribesEveryCell()
    {
        var index = Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.index.json");
        var cells = JsonSerializer.Deserialize<List<DemoCommands.MosaicCell>>(File.ReadAllText(index))!;
        Assert.Equal(36, cells.Select(c => (c.Row, c.Col)).Distinct().Count());
        Assert.All(cells.GroupBy(c => c.Class), g => Assert.Equal(3, g.Count()));
    }
}
