using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Pipeline.Tests;

public sealed class TileEncoderTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private static readonly string[] ThreeUcmImages = ["1.jpg", "2.jpg", "3.jpg"];

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-encoder-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public void ModelFolderLoadsAndEncodesTilesAndText()
    {
        var folder = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        using var encoder = RsCapRetTileEncoder.Load(folder, "cpu");
        Assert.Equal(32, encoder.InputSize);
        Assert.Equal(64, encoder.Identity.HeadsSha256.Length);
        var image = RasterImage.ReadRgb(Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images", "1.jpg"));
        var enc = encoder.Encode([image, image], caption: true, CancellationToken.None);
        Assert.Equal(2, enc.Count);
        Assert.Equal(256, enc[0].Embedding.Length);
        Assert.Equal(1.0, Math.Sqrt(enc[0].Embedding.Sum(v => (double)v * v)), 4);
        Assert.Equal(enc[0].Embedding, enc[1].Embedding);
        Assert.NotNull(enc[0].Caption);
        var text = encoder.EmbedText("a baseball field");
        Assert.Equal(256, text.Length);
        Assert.Equal(1.0, Math.Sqrt(text.Sum(v => (double)v * v)), 4);
        Assert.Throws<ArgumentException>(() => encoder.EmbedText("   "));
    }

    [Fact]
    public void ModelFolderBeamWidthDecidesHowIngestionCaptions()
    {
        var folder = TinyModelFolder.Create(Path.Combine(_dir.FullName, "beam"));
        var configPath = Path.Combine(folder, RsCapRet.Model.RsCapRetConfig.FileName);
        var config = RsCapRet.Model.RsCapRetConfig.Load(folder);
        Assert.Equal(1, config.BeamWidth);   // absent: greedy
        var images = ThreeUcmImages
            .Select(f => RasterImage.ReadRgb(Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images", f))).ToList();
        List<string> greedy;
        using (var encoder = RsCapRetTileEncoder.Load(folder, "cpu"))
        {
            Assert.Equal(1, encoder.Generation.BeamWidth);
            greedy = encoder.Encode(images, caption: true, CancellationToken.None).Select(e => e.Caption!).ToList();
        }

        (config with { BeamWidth = 3 }).Save(folder);
        using (var encoder = RsCapRetTileEncoder.Load(folder, "cpu"))
        {
            Assert.Equal(3, encoder.Generation.BeamWidth);
            var stored = encoder.Encode(images, caption: true, CancellationToken.None).Select(e => e.Caption!).ToList();
            var beam = encoder.Caption(images, encoder.Generation with { BeamWidth = 3 });
            Assert.Equal(beam, stored);
            Assert.NotEqual(greedy, stored);   // the tiny model's beams do differ from greedy, so this tells them apart
            Assert.Equal(greedy, encoder.Caption(images, encoder.Generation with { BeamWidth = 1 }));
        }

        (config with { BeamWidth = 0 }).Save(folder);
        var ex = Assert.ThrowsAny<Exception>(() => RsCapRet.Model.RsCapRetConfig.Load(folder));
        Assert.Contains(configPath, ex.Message);
        Assert.Contains("beam_width must be 1..16, got 0", ex.Message);
    }

    [Fact]
    public async Task IngestWithTheRealModelPathStoresCaptionsAndVectors()
    {
        var folder = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model2"));
        using var encoder = RsCapRetTileEncoder.Load(folder, "cpu");
        var scene = Path.Combine(_dir.FullName, "small.tif");
        // A 96x64 RGB crop of the NAIP sample (3x2 tiles of 32 px).
        using (var ds = RasterDataset.Open(Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "naip_m_4709963_se_14_1_20200831.tif")))
        {
            var bands = Enumerable.Range(1, 3).Select(b => { var buf = new byte[96 * 64]; ds.Read(b, new PixelWindow(300, 300, 96, 64), buf.AsSpan(), 96, 64); return buf; }).ToArray();
            RasterWriter.WriteGeoTiff(scene, 96, 64, bands, [485899 + 1500, 5, 0, 5209246 - 1500, 0, -5], 26914);
        }
        var store = new CatalogStore(db.DataSource);
        var result = await new SceneIngestor(store, encoder).IngestAsync(scene);
        Assert.Equal(IngestOutcome.Ingested, result.Outcome);
        Assert.Equal(6, result.Tiles);
        var hits = await store.SearchAsync(encoder.EmbedText("farmland"), 6, new SearchFilter(SceneId: result.SceneId));
        Assert.Equal(6, hits.Count);
        Assert.All(hits, h => Assert.False(string.IsNullOrEmpty(h.Caption)));
    }
}
