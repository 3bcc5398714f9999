using System.Net;
using System.Text.Json;
using Hangfire;
using Hangfire.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Cli.Tests;

/// <summary>Hangfire jobs on the live database with the tiny model, and the HTTP API, end to end.</summary>
public sealed class JobsAndApiTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-jobs-");
    public void Dispose() => _dir.Delete(true);

    private string SmallScene(string name, int offset) => TestScenes.SmallScene(_dir.FullName, name, offset);

    private async Task<Dictionary<string, string>> SceneStatuses()
    {
        var result = new Dictionary<string, string>();
        await using var cmd = db.DataSource.CreateCommand("SELECT path, status FROM scenes");
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) result[Path.GetFileName(r.GetString(0))] = r.GetString(1);
        return result;
    }

    [Fact]
    public async Task HangfireStaysUsableInTheProcessAfterAHostIsDisposed()
    {
        // Hangfire's log provider is process-wide; a disposed host's logger factory must not break later clients.
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddRsCapRetJobs(db.ConnectionString);
        using (var host = builder.Build())
        {
            host.Services.GetRequiredService<IGlobalConfiguration>();   // installs the host's log provider
            await host.StartAsync();
            await host.StopAsync();
        }
        var storage = HangfireSetup.CreateStorage(db.ConnectionString);
        var id = new BackgroundJobClient(storage).Schedule<IndexArchiveJob>(j => j.RunAsync(_dir.FullName, "*.none", "unused", null, CancellationToken.None), TimeSpan.FromDays(1));
        Assert.True(new BackgroundJobClient(storage).Delete(id));
    }

    [Fact]
    public async Task ArchiveIndexQueuesNewScenesWorkersIngestThemAndACorruptFileFailsAlone()
    {
        var archive = Directory.CreateDirectory(Path.Combine(_dir.FullName, "archive")).FullName;
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        File.Move(SmallScene("a.tif", 0), Path.Combine(archive, "a.tif"));
        File.Move(SmallScene("b.tif", 64), Path.Combine(archive, "b.tif"));
        await File.WriteAllBytesAsync(Path.Combine(archive, "broken.tif"), (await File.ReadAllBytesAsync(Path.Combine(archive, "a.tif")))[..400]);

        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddRsCapRetJobs(db.ConnectionString).AddRsCapRetWorker(JobQueues.All, 2, "test-worker");
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var client = host.Services.GetRequiredService<IBackgroundJobClient>();
            client.Enqueue<IndexArchiveJob>(j => j.RunAsync(archive, "*.tif", model, null, CancellationToken.None));
            var deadline = DateTime.UtcNow.AddSeconds(90);
            Dictionary<string, string> statuses;
            do
            {
                await Task.Delay(500);
                statuses = await SceneStatuses();
            } while (DateTime.UtcNow < deadline && !(statuses.GetValueOrDefault("a.tif") == "done" && statuses.GetValueOrDefault("b.tif") == "done" && statuses.GetValueOrDefault("broken.tif") == "failed"));
            Assert.Equal("done", statuses.GetValueOrDefault("a.tif"));
            Assert.Equal("done", statuses.GetValueOrDefault("b.tif"));
            Assert.Equal("failed", statuses.GetValueOrDefault("broken.tif"));

            // The broken file's job failed for good (bad input is not retried) with the file in its message.
            // The scene row says "failed" before Hangfire moves the job to its Failed state: wait for both.
            var storage = host.Services.GetRequiredService<JobStorage>();   // not JobStorage.Current: other classes' hosts set it
            var monitor = storage.GetMonitoringApi();
            var failedDeadline = DateTime.UtcNow.AddSeconds(30);
            while (DateTime.UtcNow < failedDeadline && !monitor.FailedJobs(0, 50).Any(f => f.Value.ExceptionMessage?.Contains("broken.tif") == true))
                await Task.Delay(250);
            var failed = monitor.FailedJobs(0, 50);
            Assert.Contains(failed, f => f.Value.ExceptionMessage?.Contains("broken.tif") == true);

            // Each finished ingest job left its progress (tiles done of the grid) where the dashboard reads it.
            List<KeyValuePair<string, Hangfire.Storage.Monitoring.SucceededJobDto>> Succeeded() =>
                monitor.SucceededJobs(0, 20).Where(j => j.Value.Job?.Type == typeof(IngestSceneJob)).ToList();
            while (DateTime.UtcNow < failedDeadline && Succeeded().Count < 2) await Task.Delay(250);
            var succeeded = Succeeded();
            Assert.Equal(2, succeeded.Count);
            using (var connection = storage.GetConnection())
                foreach (var job in succeeded)
                {
                    var p = JobProgress.Read(new Dictionary<string, string> { [JobProgress.Parameter] = connection.GetJobParameter(job.Key, JobProgress.Parameter) });
                    Assert.NotNull(p);
                    Assert.Equal("tiles", p.Unit);
                    Assert.True(p.Total > 0 && p.Done == p.Total, $"job {job.Key}: progress {p.Done}/{p.Total}");
                    Assert.Matches(@"\d+ tiles? stored", p.Text);
                }

            // A second scan queues nothing: the ingested scenes are unchanged, and the broken file, unchanged since
            // it failed, is reported failed again rather than re-queued on every scan (`scenes retry` tries again).
            var indexJob = host.Services.GetRequiredService<IndexArchiveJob>();
            var summary = await indexJob.RunAsync(archive, "*.tif", model, null, CancellationToken.None);
            Assert.StartsWith("3 files seen (0 hashed): 0 added, 0 changed, 0 removed, 0 moved, 2 unchanged, 1 failed, 0 skipped; 0 ingest jobs queued", summary);
            Assert.Contains("broken.tif", summary);
        }
        finally { await host.StopAsync(); }
    }

    [Fact]
    public async Task HttpApiValidatesInputAndServesGeoJsonAndThumbnails()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model-api"));
        using (var encoder = Inference.RsCapRetTileEncoder.Load(model, "cpu"))
            await new Pipeline.SceneIngestor(new CatalogStore(db.DataSource), encoder).IngestAsync(SmallScene("api.tif", 300));
        var port = 5600 + Random.Shared.Next(300);
        var app = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{port}", model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            foreach (var bad in new[] { "/api/search?q=", "/api/search?q=farm&bbox=1,2,3", "/api/search?q=farm&bbox=10,10,5,5",
                                        "/api/search?q=farm&k=0", "/api/search?q=farm&k=abc", "/api/search?q=farm&near=200,1,5", "/api/search?q=" + new string('x', 1001) })
            {
                var response = await http.GetAsync(bad);
                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
                Assert.Contains("error", await response.Content.ReadAsStringAsync());
            }
            var ok = await http.GetAsync("/api/search?q=a%20farm&k=3&bbox=-100,46,-98,48");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            using var doc = JsonDocument.Parse(await ok.Content.ReadAsStringAsync());
            Assert.Equal("FeatureCollection", doc.RootElement.GetProperty("type").GetString());
            var features = doc.RootElement.GetProperty("features");
            Assert.Equal(3, features.GetArrayLength());
            var first = features[0];
            Assert.Equal("Polygon", first.GetProperty("geometry").GetProperty("type").GetString());
            var ring = first.GetProperty("geometry").GetProperty("coordinates")[0];
            Assert.Equal(ring[0].ToString(), ring[ring.GetArrayLength() - 1].ToString()); // closed ring
            var thumb = first.GetProperty("properties").GetProperty("thumbnail_url").GetString()!;
            var png = await http.GetByteArrayAsync(thumb);
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, png[..4]);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/tiles/999999999")).StatusCode);
            var tileId = first.GetProperty("id").GetInt64();
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/api/tiles/{tileId}")).StatusCode);

            // Image-to-image: by stored tile id, and with an uploaded image (here the tile's own thumbnail).
            var similar = await http.GetAsync($"/api/search?tile={tileId}&k=3");
            Assert.Equal(HttpStatusCode.OK, similar.StatusCode);
            using (var similarDoc = JsonDocument.Parse(await similar.Content.ReadAsStringAsync()))
            {
                var ids = similarDoc.RootElement.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("id").GetInt64()).ToList();
                Assert.Equal(3, ids.Count);
                Assert.DoesNotContain(tileId, ids);
            }
            // Hybrid search (issue 31): the same rows re-ranked with the caption match; bad modes and weights are 400s.
            var hybrid = await http.GetAsync("/api/search?q=a%20farm&k=3&mode=hybrid&caption_weight=0.5");
            Assert.Equal(HttpStatusCode.OK, hybrid.StatusCode);
            using (var hybridDoc = JsonDocument.Parse(await hybrid.Content.ReadAsStringAsync()))
                Assert.Equal(3, hybridDoc.RootElement.GetProperty("features").GetArrayLength());
            foreach (var bad in new[] { "/api/search?q=farm&mode=bm25", "/api/search?q=farm&mode=hybrid&caption_weight=-1",
                                        "/api/search?q=farm&mode=hybrid&offset=199&k=5", $"/api/search?tile={tileId}&mode=hybrid",
                                        "/api/search?q=farm&mode=hybrid&latest=true" })
            {
                var response = await http.GetAsync(bad);
                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
                Assert.Contains("\"error\"", await response.Content.ReadAsStringAsync());
            }
            Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync("/api/search?tile=abc")).StatusCode);
            Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync($"/api/search?tile={tileId}&q=farm")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/search?tile=999999999")).StatusCode);
            var byImage = await http.PostAsync("/api/search/image?k=3", new ByteArrayContent(png));
            Assert.Equal(HttpStatusCode.OK, byImage.StatusCode);
            using (var imageDoc = JsonDocument.Parse(await byImage.Content.ReadAsStringAsync()))
                Assert.Contains(tileId, imageDoc.RootElement.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("id").GetInt64()));
            // The same upload as a file of a multipart form (curl -F image=@..., an HTML form) ranks the same tiles;
            // a form without a file, or without a boundary, is a 400 that says how to send it.
            using (var form = new MultipartFormDataContent { { new StringContent("a note"), "comment" }, { new ByteArrayContent(png), "image", "tile.png" } })
            {
                var byForm = await http.PostAsync("/api/search/image?k=3", form);
                Assert.Equal(HttpStatusCode.OK, byForm.StatusCode);
                var fromBody = await (await http.PostAsync("/api/search/image?k=3", new ByteArrayContent(png))).Content.ReadAsStringAsync();
                Assert.Equal(fromBody, await byForm.Content.ReadAsStringAsync());
            }
            using (var noFile = new MultipartFormDataContent { { new StringContent("a note"), "comment" } })
            {
                var response = await http.PostAsync("/api/search/image", noFile);
                Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
                Assert.Contains("no file field", await response.Content.ReadAsStringAsync());
            }
            // A form cut off inside its file (no closing boundary) is a 400 as well, not a 500.
            var cutOff = new ByteArrayContent("--XYZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\u0089PNG"u8.ToArray());
            cutOff.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data; boundary=XYZ");
            var cut = await http.PostAsync("/api/search/image", cutOff);
            Assert.Equal(HttpStatusCode.BadRequest, cut.StatusCode);
            Assert.Contains("multipart form cannot be read", await cut.Content.ReadAsStringAsync());
            // curl --data-binary @tile.png labels the image x-www-form-urlencoded: it is still the image, not a form.
            var labelledAsForm = new ByteArrayContent(png);
            labelledAsForm.Headers.TryAddWithoutValidation("Content-Type", "application/x-www-form-urlencoded");
            var asCurlSends = await http.PostAsync("/api/search/image?k=3", labelledAsForm);
            Assert.Equal(HttpStatusCode.OK, asCurlSends.StatusCode);
            var noBoundary = new ByteArrayContent(png);
            noBoundary.Headers.TryAddWithoutValidation("Content-Type", "multipart/form-data");
            var unbounded = await http.PostAsync("/api/search/image", noBoundary);
            Assert.Equal(HttpStatusCode.BadRequest, unbounded.StatusCode);
            Assert.Contains("needs a boundary", await unbounded.Content.ReadAsStringAsync());
            // The filters of GET /api/search apply to uploads too: scene= keeps that scene's tiles (none of another scene).
            var sceneId = first.GetProperty("properties").GetProperty("scene_id").GetInt64();
            foreach (var (scene, expected) in new[] { (sceneId, 3), (sceneId + 1000, 0) })
            {
                var filtered = await http.PostAsync($"/api/search/image?k=3&scene={scene}&latest=true", new ByteArrayContent(png));
                Assert.Equal(HttpStatusCode.OK, filtered.StatusCode);
                using var filteredDoc = JsonDocument.Parse(await filtered.Content.ReadAsStringAsync());
                var scenes = filteredDoc.RootElement.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("properties").GetProperty("scene_id").GetInt64()).ToList();
                Assert.Equal(expected, scenes.Count);
                Assert.All(scenes, s => Assert.Equal(sceneId, s));
            }
            Assert.Equal(HttpStatusCode.BadRequest, (await http.PostAsync("/api/search/image?scene=abc", new ByteArrayContent(png))).StatusCode);
            Assert.Equal(HttpStatusCode.BadRequest, (await http.PostAsync("/api/search/image?as_of=yesterday", new ByteArrayContent(png))).StatusCode);
            var garbage = await http.PostAsync("/api/search/image", new ByteArrayContent("not an image"u8.ToArray()));
            Assert.Equal(HttpStatusCode.BadRequest, garbage.StatusCode);
            Assert.Contains("cannot be read", await garbage.Content.ReadAsStringAsync());
            Assert.Equal(HttpStatusCode.BadRequest, (await http.PostAsync("/api/search/image", new ByteArrayContent([]))).StatusCode);

            // A job's progress shows as a bar on its dashboard page (no worker here: the job waits in its queue).
            var storage = app.Services.GetRequiredService<JobStorage>();
            // Scheduled a year ahead and deleted below, so no worker of another test in this database ever runs it.
            var jobClient = new BackgroundJobClient(storage);
            var jobId = jobClient.Schedule<IngestSceneJob>(j => j.RunAsync("/archive/x.tif", model, null, null, CancellationToken.None), TimeSpan.FromDays(365));
            using (var connection = storage.GetConnection())
                connection.SetJobParameter(jobId, JobProgress.Parameter, JsonSerializer.Serialize(new ProgressValue(120, 400, "tiles", "120 stored, 0 skipped (nodata)", DateTime.UtcNow)));
            var page = await http.GetStringAsync($"/hangfire/jobs/details/{jobId}");
            Assert.Contains("rscapret-progress", page);
            Assert.Contains("120 / 400 tiles (30 %)", page);
            Assert.Contains("width: 30.0%", page);
            jobClient.Delete(jobId);
        }
        finally { await app.StopAsync(); }
    }
}
