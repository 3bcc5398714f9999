using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using RsCapRet.Cli;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Hardening round two, items 2 and 7: no HTML from data on the map page (a script-bearing payload as tile captions,
/// a scene's file name, a query text, a land-use label, a "toward" text and in an error, driven in headless Chromium by
/// tests/web/no-html-from-data.mjs), the security headers on every kind of response, and the brake on wrong
/// basic-auth passwords.
/// </summary>
public sealed class PageSecurityTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    public const string Payload = "<img src=x onerror=window.__xss=1>";

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-page-sec-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task ScriptBearingDataInEveryViewOfTheMapPageStaysText()
    {
        var root = RepositoryPaths.FindRoot();
        await BrowserTools.AssertInstalledAsync(root);
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        long before, after;
        var archive = Directory.CreateDirectory(Path.Combine(_dir.FullName, "archive")).FullName;
        using (var encoder = RsCapRetTileEncoder.Load(model, "cpu"))
        {
            var ingestor = new SceneIngestor(new CatalogStore(db.DataSource), encoder);
            before = (await ingestor.IngestAsync(TestScenes.SmallScene(archive, Payload + ".tif", 300))).SceneId!.Value;
            after = (await ingestor.IngestAsync(TestScenes.SmallScene(archive, "later.tif", 300, contentOffset: 360))).SceneId!.Value;
        }
        // Captions are model output: make them the payload, as a poisoned model or catalogue would.
        await using (var cmd = db.DataSource.CreateCommand("UPDATE tiles SET caption = $1 WHERE scene_id = ANY($2)"))
        {
            cmd.Parameters.Add(new() { Value = Payload });
            cmd.Parameters.Add(new() { Value = new[] { before, after } });
            await cmd.ExecuteNonQueryAsync();
        }
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard, scenePaths: new ScenePathDisplay(archive));
        await app.StartAsync();
        string stdout;
        try
        {
            var (code, output, errors) = await TestProcess.RunAsync("node",
                [Path.Combine(root, "tests", "web", "no-html-from-data.mjs"), baseUrl, Payload, before.ToString(), after.ToString()], root, TimeSpan.FromSeconds(180));
            Assert.True(code == 0, $"tests/web/no-html-from-data.mjs failed (exit {code}):\n{errors}\n{output}");
            stdout = output;
        }
        finally { await app.StopAsync(); }
        using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var views = facts.RootElement.GetProperty("views");
        foreach (var name in new[] { "search", "heat", "changes", "classes", "error" })
            Assert.Equal(JsonValueKind.Null, views.GetProperty(name).GetProperty("xss").ValueKind);
        Assert.True(views.GetProperty("classes").GetProperty("withPayload").GetInt32() >= 1);
    }

    [Fact]
    public async Task EveryResponseCarriesTheSecurityHeadersAndTheDashboardItsOwnPolicy()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            foreach (var (url, status) in new[]
                     {
                         ("/", HttpStatusCode.OK), ("/static/map.js", HttpStatusCode.OK), ("/static/vendor/leaflet/leaflet.css", HttpStatusCode.OK),
                         ("/api/search?q=farm&k=1", HttpStatusCode.OK), ("/api/search?q=", HttpStatusCode.BadRequest), ("/api/nothing", HttpStatusCode.NotFound),
                         ("/static/nothing.js", HttpStatusCode.NotFound), ("/api/search?q=" + new string('x', 9000), HttpStatusCode.RequestUriTooLong),
                         ("/hangfire", HttpStatusCode.OK),
                     })
            {
                var response = await http.GetAsync(url);
                Assert.True(response.StatusCode == status, $"{url}: {response.StatusCode}");
                string Header(string name) => response.Headers.TryGetValues(name, out var v) ? string.Join(",", v) : "";
                var csp = Header("Content-Security-Policy");
                Assert.Contains("frame-ancestors 'none'", csp);
                Assert.Contains("object-src 'none'", csp);
                if (url.StartsWith("/hangfire", StringComparison.Ordinal)) Assert.Equal(SecurityHeaders.DashboardPolicy, csp);
                else
                {
                    Assert.Equal(SecurityHeaders.Policy, csp);
                    Assert.DoesNotContain("unsafe", csp);
                    Assert.Contains("script-src 'self'", csp);
                }
                Assert.Equal("nosniff", Header("X-Content-Type-Options"));
                Assert.Equal("DENY", Header("X-Frame-Options"));
                Assert.Equal("no-referrer", Header("Referrer-Policy"));
            }
            // The page holds no inline script for the policy to refuse.
            var html = await http.GetStringAsync("/");
            Assert.DoesNotMatch("<script(?![^>]*\\bsrc=)", html);
            Assert.DoesNotMatch("<[^>]*\\son[a-z]+\\s*=", html);   // nor inline event handlers
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public async Task WrongBasicAuthPasswordsAreBrakedPerClientWith429AndAGrowingRetryAfter()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var limits = new HostLimits { Auth = new AuthThrottleOptions { FreeFailures = 5, FirstDelay = TimeSpan.FromSeconds(1), MaxDelay = TimeSpan.FromSeconds(8) } };
        // The brake's clock is a fake one, moved by the test: a loaded machine's slow requests never outlast a block.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model,
            jobs: (services, configuration, connection) => { WebHostJobs.Dashboard(services, configuration, connection); services.AddSingleton<TimeProvider>(clock); },
            credentials: new DashboardCredentials("ops", "s3cret"), limits: limits);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            AuthenticationHeaderValue Basic(string password) => new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"ops:{password}")));
            async Task<HttpResponseMessage> Try(string? password)
            {
                var request = new HttpRequestMessage(HttpMethod.Get, "/api/search?q=farm&k=1");
                if (password is not null) request.Headers.Authorization = Basic(password);
                return await http.SendAsync(request);
            }

            // Without credentials (a browser's first request): 401, and no guess counted.
            for (var i = 0; i < 10; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await Try(null)).StatusCode);

            // The report's attack: 200 wrong passwords as fast as possible. Five are checked, then 429 with Retry-After.
            var statuses = new List<HttpStatusCode>();
            HttpResponseMessage? lastRefused = null;
            for (var i = 0; i < 200; i++)
            {
                var r = await Try($"guess{i}");
                statuses.Add(r.StatusCode);
                if (r.StatusCode == HttpStatusCode.TooManyRequests) lastRefused = r;
            }
            Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.Unauthorized));
            Assert.Equal(195, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
            Assert.All(statuses.Take(5), s => Assert.Equal(HttpStatusCode.Unauthorized, s));
            Assert.NotNull(lastRefused!.Headers.RetryAfter?.Delta);
            Assert.Contains("too many wrong passwords", await lastRefused.Content.ReadAsStringAsync());

            // While blocked even the right password is not looked at.
            var blocked = await Try("s3cret");
            Assert.Equal(HttpStatusCode.TooManyRequests, blocked.StatusCode);
            var wait = blocked.Headers.RetryAfter!.Delta!.Value;
            Assert.InRange(wait.TotalSeconds, 1, 1);   // the first block: 1 s

            // Just before its end still blocked; after it, one more wrong password blocks for twice as long.
            clock.Advance(wait - TimeSpan.FromMilliseconds(100));
            Assert.Equal(HttpStatusCode.TooManyRequests, (await Try("s3cret")).StatusCode);
            clock.Advance(TimeSpan.FromMilliseconds(200));
            Assert.Equal(HttpStatusCode.Unauthorized, (await Try("wrong-again")).StatusCode);
            var longer = await Try("s3cret");
            Assert.Equal(HttpStatusCode.TooManyRequests, longer.StatusCode);
            Assert.InRange(longer.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 2, 2);

            // The right password after the block: answered, and the count starts again.
            clock.Advance(TimeSpan.FromSeconds(2.2));
            Assert.Equal(HttpStatusCode.OK, (await Try("s3cret")).StatusCode);
            for (var i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.Unauthorized, (await Try($"again{i}")).StatusCode);
        }
        finally { await app.StopAsync(); }
    }
}
