using System.Text.RegularExpressions;
using RsCapRet.Model;
using RsCapRet.Raster;
using RsCapRet.TestSupport;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>`inspect` shows the tiles `ingest` makes: the model's tile size, the resolution plan, the grid, the warning.</summary>
public sealed class InspectPlanTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-inspect-");
    public void Dispose() => _dir.Delete(true);

    /// <summary>A 640² px RGB GeoTIFF (UTM 14N) with pixels of <paramref name="gsd"/> metres.</summary>
    private string Scene(string name, double gsd, int seed)
    {
        const int size = 640;
        var bands = Enumerable.Range(0, 3).Select(b =>
            Enumerable.Range(0, size * size).Select(i => (byte)((i % size * (3 + b) + i / size * 5 + seed * 31) % 251)).ToArray()).ToArray();
        var path = Path.Combine(_dir.FullName, name);
        RasterWriter.WriteGeoTiff(path, size, size, bands, [500000, gsd, 0, 5200000, 0, -gsd], 26914);
        return path;
    }

    [Fact]
    public async Task InspectShowsTheTileSizeGridAndResolutionThatIngestUses()
    {
        // The tiny model's backbone takes 32-px inputs; recorded as trained at 1 m/px (0.5-2), a 0.25 m scene is
        // resampled to 1 m (160 px: a 5x5 grid of 32-px tiles), and a 5 m one keeps its 640 px (a 20x20 grid) with a warning.
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        (RsCapRetConfig.Load(model) with { Gsd = 1, GsdRange = [0.5, 2] }).Save(model);
        var fine = Scene("fine.tif", 0.25, 1);
        var coarse = Scene("coarse.tif", 5, 2);

        foreach (var (scene, rows, tileGsd) in new[] { (fine, 5, "1"), (coarse, 20, "5") })
        {
            var inspect = await Run("inspect", scene, "--model", model);
            Assert.True(inspect.Code == 0, inspect.Err);
            var grid = Regex.Match(inspect.Out, @"^grid: (\d+) rows? x (\d+) cols? of (\d+)-px tiles at ([\d.]+) m/px", RegexOptions.Multiline);
            Assert.True(grid.Success, inspect.Out);
            var resolution = Regex.Match(inspect.Out, @"^resolution: (.+)$", RegexOptions.Multiline).Groups[1].Value.TrimEnd('\r');
            var toCaption = Regex.Match(inspect.Out, @"^tiles: (\d+) to caption", RegexOptions.Multiline).Groups[1].Value;

            var ingest = await Run("ingest", scene, "--model", model, "--device", "cpu", "--no-captions", "--db", db.ConnectionString);
            Assert.True(ingest.Code == 0, ingest.Err);
            var planned = Regex.Match(ingest.Out, @"(\d+)x(\d+) tiles of (\d+) px; (.+)$", RegexOptions.Multiline);
            Assert.True(planned.Success, ingest.Out);
            var stored = Regex.Match(ingest.Out, @"\(scene \d+, (\d+) tiles, \d+ skipped(, coverage [\d.]+ %)?\)").Groups[1].Value;

            Assert.Equal([planned.Groups[1].Value, planned.Groups[2].Value, planned.Groups[3].Value], [grid.Groups[1].Value, grid.Groups[2].Value, grid.Groups[3].Value]);
            Assert.Equal(planned.Groups[4].Value.TrimEnd('\r'), resolution);
            Assert.Equal(stored, toCaption);
            Assert.Equal(inspect.Err, ingest.Err);   // the same warning, or none
            // Not only equal, but the model's: its 32-px input, its resolution plan.
            Assert.Equal(("32", rows.ToString(), tileGsd), (grid.Groups[3].Value, grid.Groups[1].Value, grid.Groups[4].Value));
        }
        Assert.Contains("warning: " + coarse + ": 5 m/px is far coarser", (await Run("inspect", coarse, "--model", model)).Err);
    }
}
