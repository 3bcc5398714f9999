using System.Net;
using System.Text.Json;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// `rscapret changes` and GET /api/changes with the tiny model: two acquisitions of the same 64 px ground (dates in
/// their NAIP-style names), the later with one quarter replaced by other imagery.
/// </summary>
public sealed class ChangesCommandTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-changes-cli-");
    public void Dispose() => _dir.Delete(true);

    /// <summary>64x64 px of the NAIP sample at a fixed place; with <paramref name="pasteFrom"/>, its top-left 32x32 px come from elsewhere.</summary>
    private string Scene(string name, int? pasteFrom = null)
    {
        using var ds = RasterDataset.Open(Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "naip_m_4709963_se_14_1_20200831.tif"));
        var bands = Enumerable.Range(1, 3).Select(b =>
        {
            var buf = new byte[64 * 64];
            ds.Read(b, new PixelWindow(300, 200, 64, 64), buf.AsSpan(), 64, 64);
            if (pasteFrom is { } x)
            {
                var patch = new byte[32 * 32];
                ds.Read(b, new PixelWindow(x, 500, 32, 32), patch.AsSpan(), 32, 32);
                for (var y = 0; y < 32; y++) Array.Copy(patch, y * 32, buf, y * 64, 32);
            }
            return buf;
        }).ToArray();
        var path = Path.Combine(_dir.FullName, name);
        RasterWriter.WriteGeoTiff(path, 64, 64, bands, [485899 + 5 * 300, 5, 0, 5209246 - 5 * 200, 0, -5], 26914);
        return path;
    }

    [Fact]
    public async Task ChangesRankThePastedTileFirstOnTheCommandLineAndOverHttp()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var before = Scene("m_4709963_se_14_060_20180815.tif");
        var after = Scene("m_4709963_se_14_060_20200831.tif", pasteFrom: 700);
        foreach (var scene in new[] { before, after })
        {
            var ingest = await Run("ingest", scene, "--model", model, "--device", "cpu", "--db", db.ConnectionString);
            Assert.True(ingest.Code == 0, ingest.Out + ingest.Err);
        }

        var status = await Run("db", "status", "--db", db.ConnectionString);
        Assert.True(status.Code == 0, status.Err);
        Assert.Contains("catalogue: 1 model, scenes done 2, 8 tiles", status.Out);
        Assert.Matches(@"settings: shared_buffers \S+, maintenance_work_mem \S+, max_parallel_maintenance_workers \d+, autoprewarm (on|off)", status.Out);
        Assert.Matches(@"index tiles_embedding_hnsw: [\d.]+ MiB = [\d.]+ % of shared_buffers \(\d+ MiB\)", status.Out);
        // The one model's partition and its own graph (migrations/0016; attaching the partition named it _idx).
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(status.Out,
            @"model \d+: partition tiles_m\d+ [\d.]+ MiB \((about [\d,]+ tiles|not yet analysed)\), graph tiles_m\d+_embedding_(idx|hnsw) [\d.]+ MiB\n"), status.Out);

        var byPath = await Run("changes", "--before", before, "--after", after, "--format", "geojson", "--db", db.ConnectionString);
        Assert.True(byPath.Code == 0, byPath.Err);
        var distances = Distances(byPath.Out);
        Assert.True(distances.Count >= 4, byPath.Out);
        Assert.True(distances[0] > 1e-3, $"the pasted tile moved by {distances[0]}");
        Assert.All(distances.Skip(1), d => Assert.True(d < 1e-4, $"an unchanged tile moved by {d}"));

        // Date ranges over a box give the same pairs; the table names both captions.
        var byTime = await Run("changes", "--before", "..2019-01-01", "--after", "2020-01-01..", "--bbox", "-100,46,-98,48",
            "--format", "geojson", "--db", db.ConnectionString);
        Assert.True(byTime.Code == 0, byTime.Err);
        Assert.Equal(distances, Distances(byTime.Out));
        var table = await Run("changes", "--before", before, "--after", after, "--toward", "a river", "--k", "2",
            "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(table.Code == 0, table.Err);
        Assert.Contains("gain", table.Out);
        Assert.Contains("->", table.Out);
        // The tiny model has no relevance.json: the table says so instead of guessing whether the after tiles match.
        Assert.StartsWith("note: relevance is not available", table.Out);

        // Input that cannot pair: an empty answer, a note and exit code 2 (a script must not read it as "no change");
        // malformed input: a one-line error.
        var missing = await Run("changes", "--before", before, "--after", Path.Combine(_dir.FullName, "never-ingested.tif"), "--db", db.ConnectionString);
        Assert.Equal(CommandAction.UserError, missing.Code);
        Assert.Contains("no changes found", missing.Out);
        Assert.Contains("note: after: no ingested scene", missing.Err);
        var mixed = await Run("changes", "--before", before, "--after", "2020-01-01..", "--db", db.ConnectionString);
        Assert.Equal(CommandAction.UserError, mixed.Code);
        Assert.Contains("error: before and after must both be scenes or both be date ranges", mixed.Err);
        var noArea = await Run("changes", "--before", "..2019-01-01", "--after", "2020-01-01..", "--db", db.ConnectionString);
        Assert.Contains("date ranges need an area", noArea.Err);

        var port = 5900 + Random.Shared.Next(300);
        var app = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{port}", model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var ids = JsonDocument.Parse(byPath.Out).RootElement.GetProperty("features")[0].GetProperty("properties");
            var (b, a) = (ids.GetProperty("before").GetProperty("scene_id").GetInt64(), ids.GetProperty("after").GetProperty("scene_id").GetInt64());
            var ok = await http.GetAsync($"/api/changes?before={b}&after={a}&k=10");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            var body = await ok.Content.ReadAsStringAsync();
            Assert.Equal(distances, Distances(body));
            var first = JsonDocument.Parse(body).RootElement.GetProperty("features")[0];
            Assert.Equal("Polygon", first.GetProperty("geometry").GetProperty("type").GetString());
            var thumb = first.GetProperty("properties").GetProperty("after").GetProperty("thumbnail_url").GetString()!;
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(thumb)).StatusCode);

            foreach (var bad in new[] { "/api/changes?before=abc&after=2", "/api/changes?before=/etc/passwd&after=2", $"/api/changes?before={b}&after={a}&min_iou=2",
                                        $"/api/changes?before={b}&after={a}&k=0", "/api/changes?before=..2019-01-01&after=2020-01-01..",
                                        "/api/changes?before=..2021-01-01&after=2020-01-01..&bbox=-100,46,-98,48", $"/api/changes?before={b}&after={b}",
                                        $"/api/changes?before={b}&after={a}&area=POLYGON((0 0,1 1,1 0))" })
            {
                var response = await http.GetAsync(bad);
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {response.StatusCode}");
                Assert.Contains("\"error\"", await response.Content.ReadAsStringAsync());
            }
            var none = JsonDocument.Parse(await http.GetStringAsync($"/api/changes?before={b}&after=999999"));
            Assert.Equal(0, none.RootElement.GetProperty("features").GetArrayLength());
            Assert.Contains("no ingested scene '999999'", none.RootElement.GetProperty("notes")[0].GetString());
        }
        finally { await app.StopAsync(); }
    }

    private static List<double> Distances(string geojson) =>
        JsonDocument.Parse(geojson).RootElement.GetProperty("features").EnumerateArray()
            .Select(f => f.GetProperty("properties").GetProperty("distance").GetDouble()).ToList();
}
