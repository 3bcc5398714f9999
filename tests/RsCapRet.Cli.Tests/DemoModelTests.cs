using System.Text.Json;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>The shipped default model on the bundled demo mosaic: text queries naming UCM classes find that class.</summary>
public sealed class DemoModelTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private static string Root => RepositoryPaths.FindRoot();

    [Theory]
    [InlineData("an airport with airplanes", "airplane")]
    [InlineData("a baseball field", "baseballdiamond")]
    [InlineData("storage tanks", "storagetanks")]
    public async Task TopThreeTilesOfAClassQueryComeFromThatClass(string query, string expectedClass)
    {
        var modelDir = Path.Combine(Root, "models", "default");
        var mosaic = Path.Combine(Root, "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.tif");
        var cells = JsonSerializer.Deserialize<List<DemoCommands.MosaicCell>>(File.ReadAllText(Path.ChangeExtension(mosaic, ".index.json")))!
            .ToDictionary(c => (c.Row, c.Col), c => c.Class);
        using var encoder = RsCapRetTileEncoder.Load(modelDir, "cpu");
        var store = new CatalogStore(db.DataSource);
        var result = await new SceneIngestor(store, encoder).IngestAsync(mosaic,
            new IngestOptions { Tiling = new TilingOptions { TargetGsd = DemoCommands.ModelGsd(modelDir) }, Caption = false });
        Assert.Equal(36, result.Tiles); // one tile per mosaic cell at the model's training resolution
        var hits = await store.SearchAsync(encoder.EmbedText(query), 3, new SearchFilter(SceneId: result.SceneId));
        Assert.Equal(Enumerable.Repeat(expectedClass, 3), hits.Select(h => cells[(h.GridRow, h.GridCol)]));
    }
}
