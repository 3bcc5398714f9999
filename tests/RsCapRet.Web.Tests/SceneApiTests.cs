using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using RsCapRet.Cli;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>Scenes made through the real ingest path (tiny model) for the /api/scenes tests.</summary>
internal static class SceneApiScenes
{
    /// <summary>The tiny model with a training resolution (2 m/px, 1–3 m/px), so that a scene tiled at 20 m/px is out of range.</summary>
    public static string ModelWithTrainingRange(string directory)
    {
        var model = TinyModelFolder.Create(directory);
        (RsCapRetConfig.Load(model) with { Gsd = 2, GsdRange = [1, 3] }).Save(model);
        return model;
    }

    public static async Task<IngestResult> IngestAsync(TestDatabase db, string model, string path, double? gsd = null)
    {
        using var encoder = RsCapRetTileEncoder.Load(model, "cpu");
        return await new SceneIngestor(new CatalogStore(db.DataSource), encoder)
            .IngestAsync(path, new IngestOptions { Tiling = new TilingOptions { TargetGsd = gsd } });
    }

    public static async Task<JsonElement> JsonAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        // Answers are JSON; errors are problem details that keep the "error" member.
        Assert.Equal(response.IsSuccessStatusCode ? "application/json" : ApiProblem.ContentType, response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}

/// <summary>
/// GET /api/scenes (paging, filters, the host's path display, 400s naming the parameter) and GET /api/scenes/{id}
/// over scenes ingested through SceneIngestor: two acquisitions of one place, one elsewhere tiled far outside the
/// model's range, one outside the archive root and one that fails.
/// </summary>
public sealed class SceneApiTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private static readonly string[] ListedScenes = ["2018/m_4709963_se_14_060_20180815.tif", "2020/m_4709963_se_14_060_20200831.tif", "broken.tif",
                                                     "far/m_4709963_se_14_060_20210701.tif", "m_4709963_ne_14_060_20190101.tif"];
    private static readonly string[] SameBytesScenes = ["2018/m_4709963_se_14_060_20180815.tif", "copies/same.tif"];

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-scene-api-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task ScenesAreListedPagedFilteredShownOneByOneAndBadParametersAre400s()
    {
        var archive = Path.Combine(_dir.FullName, "archive");
        Directory.CreateDirectory(Path.Combine(archive, "2018"));
        Directory.CreateDirectory(Path.Combine(archive, "2020"));
        Directory.CreateDirectory(Path.Combine(archive, "far"));
        var outside = Directory.CreateDirectory(Path.Combine(_dir.FullName, "private-folder")).FullName;
        var model = SceneApiScenes.ModelWithTrainingRange(Path.Combine(_dir.FullName, "model"));
        var early = (await SceneApiScenes.IngestAsync(db, model, TestScenes.SmallScene(Path.Combine(archive, "2018"), "m_4709963_se_14_060_20180815.tif", 300))).SceneId!.Value;
        var late = (await SceneApiScenes.IngestAsync(db, model, TestScenes.SmallScene(Path.Combine(archive, "2020"), "m_4709963_se_14_060_20200831.tif", 300, contentOffset: 360))).SceneId!.Value;
        var farResult = await SceneApiScenes.IngestAsync(db, model, TestScenes.SmallScene(Path.Combine(archive, "far"), "m_4709963_se_14_060_20210701.tif", 0), gsd: 20);
        Assert.True(farResult.OutOfRange, farResult.Warning);
        var far = farResult.SceneId!.Value;
        var hidden = (await SceneApiScenes.IngestAsync(db, model, TestScenes.SmallScene(outside, "m_4709963_ne_14_060_20190101.tif", 150))).SceneId!.Value;
        var broken = Path.Combine(archive, "broken.tif");
        await File.WriteAllBytesAsync(broken, (await File.ReadAllBytesAsync(Path.Combine(archive, "2018", "m_4709963_se_14_060_20180815.tif")))[..400]);
        await Assert.ThrowsAnyAsync<Exception>(() => SceneApiScenes.IngestAsync(db, model, broken));

        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard, scenePaths: new ScenePathDisplay(archive),
            tileCache: new TileDiskCache(Path.Combine(_dir.FullName, "tile-cache"), 1 << 20));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            async Task<JsonElement> Get(string url)
            {
                var response = await http.GetAsync(url);
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"{url}: {response.StatusCode} {body}");
                Assert.DoesNotContain(_dir.FullName, body);   // no server folder anywhere: paths, errors, decisions
                return await SceneApiScenes.JsonAsync(response);
            }
            static List<long?> Ids(JsonElement list) =>
                list.GetProperty("scenes").EnumerateArray().Select(s => s.GetProperty("id").ValueKind == JsonValueKind.Null ? (long?)null : s.GetProperty("id").GetInt64()).ToList();

            // Everything current: four complete scenes and the failed path, in path order; the default page size.
            var all = await Get("/api/scenes");
            Assert.Equal(5, all.GetProperty("total").GetInt64());
            Assert.Equal(100, all.GetProperty("limit").GetInt32());
            Assert.Equal(0, all.GetProperty("offset").GetInt32());
            var rows = all.GetProperty("scenes").EnumerateArray().ToDictionary(s => s.GetProperty("path").GetString()!);
            Assert.Equal(ListedScenes, rows.Keys.Order(StringComparer.Ordinal));
            var e = rows["2018/m_4709963_se_14_060_20180815.tif"];
            Assert.Equal(early, e.GetProperty("id").GetInt64());
            Assert.Equal("done", e.GetProperty("status").GetString());
            Assert.Equal("2018-08-15T00:00:00.0000000Z", e.GetProperty("acquired_at").GetString());
            Assert.True(e.GetProperty("tiles").GetInt32() > 0);
            Assert.InRange(e.GetProperty("coverage").GetDouble(), 0.5, 1.0);
            Assert.Equal("measured", e.GetProperty("coverage_state").GetString());
            Assert.False(e.GetProperty("out_of_range").GetBoolean());
            Assert.Equal(4, e.GetProperty("bbox").GetArrayLength());
            Assert.False(e.TryGetProperty("plan", out _));   // the list leaves plans to GET /api/scenes/{id}
            var f = rows["far/m_4709963_se_14_060_20210701.tif"];
            Assert.Equal(far, f.GetProperty("id").GetInt64());
            Assert.True(f.GetProperty("out_of_range").GetBoolean());
            Assert.Contains(f.GetProperty("warnings").EnumerateArray(), w => w.GetString()!.Contains("far coarser"));
            Assert.Equal(hidden, rows["m_4709963_ne_14_060_20190101.tif"].GetProperty("id").GetInt64());   // outside the archive root: the file name only
            var failed = rows["broken.tif"];
            Assert.Equal("failed", failed.GetProperty("status").GetString());
            Assert.False(string.IsNullOrEmpty(failed.GetProperty("error").GetString()));

            // Paging: limit and offset over the same order; past the end, no rows but the same total.
            var firstTwo = await Get("/api/scenes?limit=2");
            Assert.Equal(5, firstTwo.GetProperty("total").GetInt64());
            Assert.Equal(Ids(all).Take(2), Ids(firstTwo));
            var lastPage = await Get("/api/scenes?limit=2&offset=4");
            Assert.Equal(Ids(all).Skip(4), Ids(lastPage));
            var past = await Get("/api/scenes?offset=50");
            Assert.Equal(0, past.GetProperty("scenes").GetArrayLength());
            Assert.Equal(5, past.GetProperty("total").GetInt64());

            // Filters: status, bbox (the far scene's ground only), acquisition dates.
            var onlyFailed = await Get("/api/scenes?status=failed");
            Assert.Equal(1, onlyFailed.GetProperty("total").GetInt64());
            Assert.Equal("broken.tif", onlyFailed.GetProperty("scenes")[0].GetProperty("path").GetString());
            Assert.Equal(4, (await Get("/api/scenes?status=done")).GetProperty("total").GetInt64());
            Assert.Equal(0, (await Get("/api/scenes?status=removed")).GetProperty("total").GetInt64());
            var b = f.GetProperty("bbox").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            var (cx, cy) = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2);
            var inBox = await Get(FormattableString.Invariant($"/api/scenes?bbox={cx - 0.0005},{cy - 0.0005},{cx + 0.0005},{cy + 0.0005}"));
            Assert.Equal(new long?[] { far }, Ids(inBox));
            Assert.Equal(0, (await Get("/api/scenes?bbox=10,10,11,11")).GetProperty("total").GetInt64());
            var after = await Get("/api/scenes?after=2020-01-01");
            Assert.Equal(new long?[] { late, far }, Ids(after));
            Assert.Equal(new long?[] { early }, Ids(await Get("/api/scenes?before=2019-01-01")));
            Assert.Equal(new long?[] { hidden }, Ids(await Get("/api/scenes?after=2018-12-31&before=2020-01-01&status=done")));
            Assert.Equal(5, (await Get("/api/scenes?all=true")).GetProperty("total").GetInt64());   // nothing superseded or removed yet

            // Bad parameters: 400 JSON naming the parameter.
            foreach (var (url, name) in new[]
                     {
                         ("/api/scenes?limit=0", "limit"), ("/api/scenes?limit=1001", "limit"), ("/api/scenes?limit=abc", "limit"), ("/api/scenes?limit=1&limit=2", "limit"),
                         ("/api/scenes?offset=-1", "offset"), ("/api/scenes?offset=1.5", "offset"), ("/api/scenes?status=bogus", "status"),
                         ("/api/scenes?bbox=1,2,3", "bbox"), ("/api/scenes?bbox=200,0,210,10", "bbox"), ("/api/scenes?bbox=5,5,1,1", "bbox"),
                         ("/api/scenes?after=yesterday", "after"), ("/api/scenes?before=31/31/2020", "before"),
                         ("/api/scenes?after=2021-01-01&before=2020-01-01", "after"), ("/api/scenes?all=maybe", "all"),
                     })
            {
                var response = await http.GetAsync(url);
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{url}: {response.StatusCode} {body}");
                Assert.Contains(name, (await SceneApiScenes.JsonAsync(response)).GetProperty("error").GetString());
            }

            // One scene: its rows with the ingest plan; unknown ids 404, malformed ones 400.
            var one = await Get($"/api/scenes/{far}");
            Assert.Equal(far, one.GetProperty("id").GetInt64());
            var farRow = Assert.Single(one.GetProperty("scenes").EnumerateArray());
            Assert.Equal("far/m_4709963_se_14_060_20210701.tif", farRow.GetProperty("path").GetString());
            Assert.True(farRow.GetProperty("out_of_range").GetBoolean());
            var plan = farRow.GetProperty("plan");
            Assert.Equal(JsonValueKind.Object, plan.ValueKind);
            Assert.Equal(20, plan.GetProperty("gsd").GetDouble());
            Assert.Equal(IngestPlan.CurrentGrid, plan.GetProperty("grid").GetString());
            foreach (var (url, status) in new[] { ("/api/scenes/999999999", HttpStatusCode.NotFound), ("/api/scenes/abc", HttpStatusCode.BadRequest),
                                                  ("/api/scenes/0", HttpStatusCode.BadRequest), ("/api/scenes/-3", HttpStatusCode.BadRequest),
                                                  ("/api/scenes/99999999999999999999", HttpStatusCode.BadRequest) })
            {
                var response = await http.GetAsync(url);
                Assert.True(response.StatusCode == status, $"{url}: {response.StatusCode}");
                Assert.False(string.IsNullOrEmpty((await SceneApiScenes.JsonAsync(response)).GetProperty("error").GetString()));
            }

            // Decisions that name another path show it as the host shows paths: the same bytes at a second path
            // (shown without model work), then that path moved (a rename seen by a scan).
            var copy = Path.Combine(archive, "copies", "same.tif");
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(Path.Combine(archive, "2018", "m_4709963_se_14_060_20180815.tif"), copy);
            Assert.Equal(IngestOutcome.Reused, (await SceneApiScenes.IngestAsync(db, model, copy)).Outcome);
            var shared = (await Get($"/api/scenes/{early}")).GetProperty("scenes").EnumerateArray().ToDictionary(r => r.GetProperty("path").GetString()!);
            Assert.Equal(SameBytesScenes, shared.Keys.Order(StringComparer.Ordinal));
            Assert.Equal($"same bytes as scene {early} (2018/m_4709963_se_14_060_20180815.tif): shown without model work",
                shared["copies/same.tif"].GetProperty("decision").GetString());
            Assert.True(await new CatalogStore(db.DataSource).MovePathAsync(copy, Path.Combine(archive, "copies", "renamed.tif"), e.GetProperty("model_id").GetInt32()));
            var renamed = (await Get($"/api/scenes/{early}")).GetProperty("scenes").EnumerateArray().Single(r => r.GetProperty("path").GetString() == "copies/renamed.tif");
            Assert.Equal("moved from copies/same.tif", renamed.GetProperty("decision").GetString());

            // The land-use route beside it still answers (and 404s for unknown scenes).
            var classes = await http.GetAsync($"/api/scenes/{early}/classes?labels=farmland,river");
            Assert.Equal(HttpStatusCode.OK, classes.StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/scenes/999999999/classes")).StatusCode);

            // Search hits say whether their scene is out of the model's range.
            var search = JsonDocument.Parse(await http.GetStringAsync("/api/search?q=a%20farm&k=100")).RootElement;
            var hits = search.GetProperty("features").EnumerateArray().Select(h => h.GetProperty("properties")).ToList();
            Assert.Contains(hits, h => h.GetProperty("scene_id").GetInt64() == far);
            Assert.All(hits, h => Assert.Equal(h.GetProperty("scene_id").GetInt64() == far, h.GetProperty("out_of_range").GetBoolean()));
        }
        finally { await app.StopAsync(); }
    }
}

/// <summary>
/// DELETE /api/scenes/{id}: removes the scene from the list, its tiles from search and its cached map tiles; a
/// cross-site DELETE is refused like every cross-site state change, and with basic auth on it needs credentials.
/// </summary>
public sealed class SceneApiDeleteTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private static readonly string[] OnlyATif = ["a.tif"];

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-scene-delete-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task DeleteRemovesTheSceneItsTilesAndCachedMapTilesAndCrossSiteOrUnauthenticatedDeletesAreRefused()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var a = (await SceneApiScenes.IngestAsync(db, model, TestScenes.SmallScene(_dir.FullName, "a.tif", 300))).SceneId!.Value;
        var b = (await SceneApiScenes.IngestAsync(db, model, TestScenes.SmallScene(_dir.FullName, "b.tif", 0))).SceneId!.Value;
        var cacheDir = Path.Combine(_dir.FullName, "tile-cache");
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard, tileCache: new TileDiskCache(cacheDir, 1 << 22));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            async Task<HashSet<long>> SearchedScenes()
            {
                var doc = JsonDocument.Parse(await http.GetStringAsync("/api/search?q=a%20farm&k=1000")).RootElement;
                return doc.GetProperty("features").EnumerateArray().Select(h => h.GetProperty("properties").GetProperty("scene_id").GetInt64()).ToHashSet();
            }
            async Task<List<long>> Listed() =>
                (await SceneApiScenes.JsonAsync(await http.GetAsync("/api/scenes"))).GetProperty("scenes").EnumerateArray().Select(s => s.GetProperty("id").GetInt64()).ToList();
            Assert.Equal(new[] { a, b }, (await Listed()).Order());
            Assert.Equal(new[] { a, b }, (await SearchedScenes()).Order());
            var aRow = (await SceneApiScenes.JsonAsync(await http.GetAsync($"/api/scenes/{a}"))).GetProperty("scenes")[0];
            Assert.Equal("a.tif", aRow.GetProperty("path").GetString());
            var tiles = aRow.GetProperty("tiles").GetInt32();

            // A map tile over scene a, so that there is a cached tile to drop.
            var box = aRow.GetProperty("bbox").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            var mapTile = MapTileAddress.Containing((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 15);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/tiles/{mapTile.Z}/{mapTile.X}/{mapTile.Y}.png")).StatusCode);
            Assert.NotEmpty(Directory.EnumerateFiles(cacheDir, "*.png", SearchOption.AllDirectories));

            // Cross-site: a foreign Origin, an opaque one, or a browser's Sec-Fetch-Site: refused, nothing deleted.
            foreach (var (header, value) in new[] { ("Origin", "https://evil.example"), ("Origin", "null"), ("Sec-Fetch-Site", "cross-site") })
            {
                var request = new HttpRequestMessage(HttpMethod.Delete, $"/api/scenes/{a}");
                request.Headers.Add(header, value);
                var refused = await http.SendAsync(request);
                Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, $"{header}: {value}: {refused.StatusCode}");
                Assert.Contains("cross-site DELETE", (await SceneApiScenes.JsonAsync(refused)).GetProperty("error").GetString());
            }
            Assert.Equal(new[] { a, b }, (await Listed()).Order());
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/api/scenes/{a}")).StatusCode);

            // The page's own DELETE (same origin): the scene, its tiles and the cached map tiles that drew it go.
            var own = new HttpRequestMessage(HttpMethod.Delete, $"/api/scenes/{a}");
            own.Headers.Add("Origin", baseUrl);
            own.Headers.Add("Sec-Fetch-Site", "same-origin");
            var deleted = await http.SendAsync(own);
            Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
            var d = await SceneApiScenes.JsonAsync(deleted);
            Assert.Equal(a, d.GetProperty("id").GetInt64());
            Assert.Equal(OnlyATif, d.GetProperty("paths").EnumerateArray().Select(p => p.GetString()));
            Assert.Equal(new[] { a }, d.GetProperty("scene_ids").EnumerateArray().Select(p => p.GetInt64()));
            Assert.Equal(tiles, d.GetProperty("tiles").GetInt64());
            Assert.True(d.GetProperty("cached_map_tiles").GetInt32() >= 1, d.ToString());
            Assert.DoesNotContain(_dir.FullName, d.ToString());
            Assert.Equal(new[] { b }, await Listed());
            Assert.Equal(new[] { b }, (await SearchedScenes()).ToList());
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/api/scenes/{a}")).StatusCode);

            // Again, or unknown: 404; malformed: 400; all JSON.
            foreach (var (url, status) in new[] { ($"/api/scenes/{a}", HttpStatusCode.NotFound), ("/api/scenes/999999999", HttpStatusCode.NotFound),
                                                  ("/api/scenes/abc", HttpStatusCode.BadRequest), ("/api/scenes/0", HttpStatusCode.BadRequest) })
            {
                var response = await http.DeleteAsync(url);
                Assert.True(response.StatusCode == status, $"DELETE {url}: {response.StatusCode}");
                Assert.False(string.IsNullOrEmpty((await SceneApiScenes.JsonAsync(response)).GetProperty("error").GetString()));
            }
        }
        finally { await app.StopAsync(); }

        // A host meant for other machines (basic auth on): DELETE without the credentials is a 401 and deletes nothing.
        var authUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var authApp = RsCapRetWebHost.Build(db.ConnectionString, authUrl, model, jobs: WebHostJobs.Dashboard, credentials: new DashboardCredentials("ops", "s3cret"),
            tileCache: new TileDiskCache(cacheDir, 1 << 22));
        await authApp.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(authUrl) };
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.DeleteAsync($"/api/scenes/{b}")).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/scenes")).StatusCode);
            var wrong = new HttpRequestMessage(HttpMethod.Delete, $"/api/scenes/{b}");
            wrong.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:guess")));
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(wrong)).StatusCode);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("ops:s3cret")));
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/api/scenes/{b}")).StatusCode);
            // Credentials do not make a cross-site DELETE acceptable (a browser would send them along).
            var crossSite = new HttpRequestMessage(HttpMethod.Delete, $"/api/scenes/{b}");
            crossSite.Headers.Add("Origin", "https://evil.example");
            Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(crossSite)).StatusCode);
            var response = await http.DeleteAsync($"/api/scenes/{b}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(0, (await SceneApiScenes.JsonAsync(await http.GetAsync("/api/scenes"))).GetProperty("total").GetInt64());
        }
        finally { await authApp.StopAsync(); }
    }
}
