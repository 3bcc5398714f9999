using System.Net;
using System.Text.Json;
using RsCapRet.Cli;
using RsCapRet.Cli.Commands;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// A thumbnail request reads the registered scene only while it is the file that was ingested: a file replaced by
/// other content of the same size, grown, or gone answers 410 with a JSON error and is not read.
/// </summary>
public sealed class ThumbnailIntegrityTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-thumbs-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task OnlyTheFileThatWasIngestedIsRead()
    {
        var scene = TestScenes.SmallScene(_dir.FullName, "scene.tif", 0);
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        using (var encoder = Inference.RsCapRetTileEncoder.Load(model, "cpu"))
            await new Pipeline.SceneIngestor(new CatalogStore(db.DataSource), encoder).IngestAsync(scene);
        var port = 6900 + Random.Shared.Next(400);
        var app = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{port}", model, jobs: WebHostJobs.Dashboard, scenePaths: new ScenePathDisplay(null));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            using var doc = JsonDocument.Parse(await http.GetStringAsync("/api/search?q=a%20farm&k=1"));
            var tile = doc.RootElement.GetProperty("features")[0].GetProperty("id").GetInt64();
            var ok = await http.GetAsync($"/api/tiles/{tile}/thumbnail.png");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("image/png", ok.Content.Headers.ContentType?.MediaType);

            async Task<string> Refused()
            {
                var response = await http.GetAsync($"/api/tiles/{tile}/thumbnail.png");
                Assert.Equal(HttpStatusCode.Gone, response.StatusCode);
                return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString()!;
            }

            // Other content of the same size: one byte near the end (pixel data) changed.
            var bytes = await File.ReadAllBytesAsync(scene);
            bytes[^64] ^= 0xFF;
            await File.WriteAllBytesAsync(scene, bytes);
            Assert.Equal("scene.tif: the scene file changed since it was ingested (its SHA-256 differs)", await Refused());
            await File.AppendAllTextAsync(scene, "x");
            Assert.StartsWith("scene.tif: the scene file changed since it was ingested (", await Refused());
            File.Delete(scene);
            Assert.Equal("scene.tif: does not exist", await Refused());
        }
        finally { await app.StopAsync(); }
    }
}
