using System.Net;
using System.Text.Json;
using RsCapRet.Cli;
using RsCapRet.Cli.Commands;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>The HTTP API names scenes relative to RSCAPRET_ARCHIVE_ROOT, or by file name: never the server's layout.</summary>
public sealed class ScenePathDisplayTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-paths-");
    public void Dispose() => _dir.Delete(true);

    [Theory]
    [InlineData("/srv/archive", "/srv/archive/2020/a.tif", "2020/a.tif")]
    [InlineData("/srv/archive/", "/srv/archive/a.tif", "a.tif")]
    [InlineData("/srv/archive", "/srv/archive-old/2020/a.tif", "a.tif")]   // a sibling sharing the root's prefix is outside
    [InlineData("/srv/archive", "/srv/other/a.tif", "a.tif")]
    [InlineData("/srv/archive", "/srv/archive/../secret/a.tif", "a.tif")]
    [InlineData(null, "/srv/archive/2020/a.tif", "a.tif")]
    public void ScenesAreNamedBelowTheRootOrByFileName(string? root, string path, string expected) =>
        Assert.Equal(expected, new ScenePathDisplay(root).Name(path));

    [Fact]
    public void MessagesLoseTheFolderOfTheSceneAndOfFilesBesideIt()
    {
        var paths = new ScenePathDisplay("/srv/archive");
        Assert.Equal("2020/a.tif: cannot read 2020/a.tif.aux.xml",
            paths.Redact("/srv/archive/2020/a.tif: cannot read /srv/archive/2020/a.tif.aux.xml", "/srv/archive/2020/a.tif"));
        Assert.Equal("b.tif: does not exist", new ScenePathDisplay(null).Redact("/data/x/b.tif: does not exist", "/data/x/b.tif"));
    }

    [Fact]
    public async Task SearchResultsAndThumbnailErrorsShowNoServerPaths()
    {
        var root = Directory.CreateDirectory(Path.Combine(_dir.FullName, "archive", "2020")).Parent!.FullName;
        var inside = TestScenes.SmallScene(Path.Combine(root, "2020"), "inside.tif", 0);
        var outside = TestScenes.SmallScene(Directory.CreateDirectory(Path.Combine(_dir.FullName, "elsewhere")).FullName, "outside.tif", 64);
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        using (var encoder = Inference.RsCapRetTileEncoder.Load(model, "cpu"))
        {
            var ingestor = new Pipeline.SceneIngestor(new CatalogStore(db.DataSource), encoder);
            await ingestor.IngestAsync(inside);
            await ingestor.IngestAsync(outside);
        }
        var port = 6500 + Random.Shared.Next(400);
        var app = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{port}", model, jobs: WebHostJobs.Dashboard, scenePaths: new ScenePathDisplay(root));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var body = await http.GetStringAsync("/api/search?q=a%20farm&k=100");
            Assert.DoesNotContain(_dir.FullName, body);
            using var doc = JsonDocument.Parse(body);
            var scenes = doc.RootElement.GetProperty("features").EnumerateArray()
                .Select(f => f.GetProperty("properties").GetProperty("scene").GetString()).ToHashSet();
            Assert.Equal(["2020/inside.tif", "outside.tif"], scenes.Order());

            // The scene file is gone: the thumbnail's error names it below the root, as the search did.
            var tile = doc.RootElement.GetProperty("features").EnumerateArray()
                .First(f => f.GetProperty("properties").GetProperty("scene").GetString() == "2020/inside.tif").GetProperty("id").GetInt64();
            Assert.DoesNotContain(_dir.FullName, await http.GetStringAsync($"/api/tiles/{tile}"));
            File.Delete(inside);
            var gone = await http.GetAsync($"/api/tiles/{tile}/thumbnail.png");
            Assert.Equal(HttpStatusCode.Gone, gone.StatusCode);
            var error = JsonDocument.Parse(await gone.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString();
            Assert.Equal("2020/inside.tif: does not exist", error);
        }
        finally { await app.StopAsync(); }
    }
}
