using Hangfire;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RsCapRet.Jobs;
using RsCapRet.Raster;
using RsCapRet.TestSupport;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// `index-archive CATALOG.json`: a local STAC catalog (catalog → collection → items → GeoTIFF assets, relative hrefs)
/// with one malformed item; the good items are ingested with their STAC datetime and collection, the bad one is
/// reported alone, and a time filter then finds the right scene.
/// </summary>
public sealed class StacCatalogIndexTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-stac-");
    public void Dispose() => _dir.Delete(true);

    private static string Item(string id, string? datetime, string href) => $$"""
        {"type": "Feature", "stac_version": "1.0.0", "id": "{{id}}", "collection": "naip-sample",
         "geometry": null, "properties": {"datetime": {{(datetime is null ? "null" : $"\"{datetime}\"")}} },
         "links": [{"rel": "collection", "href": "../collection.json"}],
         "assets": {"thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
                    "image": {"href": "{{href}}", "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"]} }
        }
        """;

    [Fact]
    public async Task ACatalogsItemsAreIngestedWithTheirTimesAndAMalformedItemFailsAlone()
    {
        var root = _dir.FullName;
        var scenes = Directory.CreateDirectory(Path.Combine(root, "scenes")).FullName;
        var items = Directory.CreateDirectory(Path.Combine(root, "items")).FullName;
        // Names without dates: the times can only come from the items.
        File.Move(TestScenes.SmallScene(root, "early.tif", 0), Path.Combine(scenes, "early.tif"));
        File.Move(TestScenes.SmallScene(root, "late.tif", 64), Path.Combine(scenes, "late.tif"));
        await File.WriteAllTextAsync(Path.Combine(items, "early.json"), Item("early", "2018-07-16T17:00:00Z", "../scenes/early.tif"));
        await File.WriteAllTextAsync(Path.Combine(items, "late.json"), Item("late", "2020-08-31T17:00:00Z", "../scenes/late.tif"));
        await File.WriteAllTextAsync(Path.Combine(items, "broken.json"), Item("broken", null, "../scenes/late.tif"));
        await File.WriteAllTextAsync(Path.Combine(root, "collection.json"), """
            {"type": "Collection", "stac_version": "1.0.0", "id": "naip-sample", "description": "test", "license": "PD",
             "extent": {}, "links": [{"rel": "root", "href": "catalog.json"}, {"rel": "parent", "href": "catalog.json"},
               {"rel": "item", "href": "items/early.json"}, {"rel": "item", "href": "./items/late.json"}, {"rel": "item", "href": "items/broken.json"},
               {"rel": "item", "href": "https://example.com/remote.json"}]}
            """);
        var catalog = Path.Combine(root, "catalog.json");
        await File.WriteAllTextAsync(catalog, """
            {"type": "Catalog", "stac_version": "1.0.0", "id": "archive", "description": "test",
             "links": [{"rel": "self", "href": "catalog.json"}, {"rel": "child", "href": "collection.json"}]}
            """);

        var listed = StacCatalog.Items(catalog);
        Assert.Equal(4, listed.Count);
        Assert.Equal(Path.Combine(scenes, "early.tif"), listed.Single(i => i.ItemPath.EndsWith("early.json")).AssetPath);
        Assert.Contains("neither properties.datetime nor properties.start_datetime", listed.Single(i => i.ItemPath.EndsWith("broken.json")).Problem);
        Assert.Contains("https links are not followed", listed.Single(i => i.AssetPath is null && !i.ItemPath.EndsWith("broken.json")).Problem);

        var model = TinyModelFolder.Create(Path.Combine(root, "model"));
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddRsCapRetJobs(db.ConnectionString).AddRsCapRetWorker(JobQueues.All, 1, "stac-worker");
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var summary = await host.Services.GetRequiredService<IndexArchiveJob>().RunAsync(catalog, "*.tif", model, null, CancellationToken.None);
            Assert.StartsWith("4 STAC items seen, 2 ingest jobs queued, 2 items failed: ", summary);
            Assert.Contains($"{Path.Combine(items, "broken.json")}: STAC item has neither properties.datetime", summary);
            var deadline = DateTime.UtcNow.AddSeconds(90);
            List<(string, string, DateTime?, string?, string?)> rows;
            do
            {
                await Task.Delay(500);
                rows = await Rows();
            } while (DateTime.UtcNow < deadline && !(rows.Count == 2 && rows.All(r => r.Item2 == "done")));
            Assert.Equal(new (string, string, DateTime?, string?, string?)[]
            {
                ("early.tif", "done", new DateTime(2018, 7, 16, 17, 0, 0), "stac", "naip-sample"),
                ("late.tif", "done", new DateTime(2020, 8, 31, 17, 0, 0), "stac", "naip-sample"),
            }, rows);
        }
        finally { await host.StopAsync(); }

        var after = await Run("search", "fields", "--after", "2019-01-01", "--k", "50", "--format", "geojson",
            "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(after.Code == 0, after.Err);
        Assert.Contains("late.tif", after.Out);
        Assert.DoesNotContain("early.tif", after.Out);
    }

    private async Task<List<(string, string, DateTime?, string?, string?)>> Rows()
    {
        var rows = new List<(string, string, DateTime?, string?, string?)>();
        await using var cmd = db.DataSource.CreateCommand("SELECT path, status, acquired_at, acquired_source, stac_collection FROM scenes ORDER BY path");
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync())
            rows.Add((Path.GetFileName(r.GetString(0)), r.GetString(1), r.IsDBNull(2) ? null : r.GetDateTime(2),
                r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4)));
        return rows;
    }
}
