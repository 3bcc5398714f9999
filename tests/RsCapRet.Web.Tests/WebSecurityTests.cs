using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using RsCapRet.Cli;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// The attacks of the hardening issue, each against the running web host: uploads that are not images (VRTs
/// pointing at server files or URLs), a decompression bomb, an over-size body, cross-site POSTs to the dashboard,
/// a DNS-rebinding Host header, and public bindings from configuration sources other than --urls.
/// </summary>
public sealed class WebSecurityTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-sec-");
    public void Dispose() => _dir.Delete(true);

    private async Task<(Microsoft.AspNetCore.Builder.WebApplication App, HttpClient Http)> StartAsync()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var port = 6000 + Random.Shared.Next(500);
        var app = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{port}", model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        return (app, new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") });
    }

    private static async Task<(HttpStatusCode Status, string Body)> PostImage(HttpClient http, byte[] body)
    {
        var response = await http.PostAsync("/api/search/image?k=3", new ByteArrayContent(body));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>A loopback listener that records whether anything connected to it.</summary>
    private sealed class Tripwire : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        public int Connections;
        public Tripwire()
        {
            _listener.Start();
            _ = Task.Run(async () =>
            {
                try { while (true) { using var c = await _listener.AcceptTcpClientAsync(); Interlocked.Increment(ref Connections); } }
                catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            });
        }
        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
        public void Dispose() => _listener.Stop();
    }

    [Fact]
    public async Task UploadsThatAreNotImagesAreRefusedAndNothingIsReadOrFetched()
    {
        var secret = Path.Combine(_dir.FullName, "db.env");
        await File.WriteAllTextAsync(secret, "RSCAPRET_DB=Host=127.0.0.1;Password=hunter2\n");
        var png = TestImages.Png(Path.Combine(_dir.FullName, "ref.png"));
        using var tripwire = new Tripwire();
        var (app, http) = await StartAsync();
        try
        {
            var attacks = new Dictionary<string, string>
            {
                // A VRT that shows a server-side image through the ranking it returns.
                ["vrt to a local file"] = $"<VRTDataset rasterXSize=\"8\" rasterYSize=\"8\"><VRTRasterBand dataType=\"Byte\" band=\"1\"><SimpleSource><SourceFilename>{png}</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>",
                // A raw-band VRT over a text file: its bytes become pixels, one ranking at a time.
                ["raw-band vrt over a secret"] = $"<VRTDataset rasterXSize=\"16\" rasterYSize=\"1\"><VRTRasterBand dataType=\"Byte\" band=\"1\" subClass=\"VRTRawRasterBand\"><SourceFilename relativetoVRT=\"0\">{secret}</SourceFilename><ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>16</LineOffset></VRTRasterBand></VRTDataset>",
                // A VRT that makes the server send an HTTP request.
                ["vrt through /vsicurl/"] = $"<VRTDataset rasterXSize=\"8\" rasterYSize=\"8\"><VRTRasterBand dataType=\"Byte\" band=\"1\"><SimpleSource><SourceFilename>/vsicurl/http://127.0.0.1:{tripwire.Port}/x.tif</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>",
            };
            foreach (var (name, vrt) in attacks)
            {
                var (status, body) = await PostImage(http, Encoding.UTF8.GetBytes(vrt));
                Assert.True(status == HttpStatusCode.BadRequest, $"{name}: {status} {body}");
                Assert.Contains("is not a PNG, JPEG, TIFF or WebP image", body);
                Assert.DoesNotContain(_dir.FullName, body);   // no server paths in the answer
            }
            await Task.Delay(300);
            Assert.Equal(0, tripwire.Connections);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public void GdalSendsNoRequestsUnlessTheOperatorAllowsIt()
    {
        using var tripwire = new Tripwire();
        Assert.Throws<RasterException>(() => RasterDataset.Open($"/vsicurl/http://127.0.0.1:{tripwire.Port}/scene.tif"));
        Thread.Sleep(300);
        Assert.Equal(0, tripwire.Connections);
    }

    [Fact]
    public async Task DecompressionBombAndOverSizeBodiesGet413WithoutDecoding()
    {
        var (app, http) = await StartAsync();
        try
        {
            var bomb = TestImages.PngHeaderOnly(20000, 20000);   // ~100 bytes declaring 400 MP
            var (status, body) = await PostImage(http, bomb);
            Assert.True(status == HttpStatusCode.RequestEntityTooLarge, $"{status} {body}");
            Assert.Contains("20000x20000 px", body);
            Assert.Contains("limit of 50 MP", body);

            var (bigStatus, bigBody) = await PostImage(http, new byte[25_000_000]);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, bigStatus);
            Assert.Contains("\"error\"", bigBody);

            // An ordinary image still works.
            var ok = await PostImage(http, await File.ReadAllBytesAsync(TestImages.Png(Path.Combine(_dir.FullName, "ok.png"))));
            Assert.Equal(HttpStatusCode.OK, ok.Status);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public async Task OverLongUrlsGet414WithAJsonBody()
    {
        var (app, http) = await StartAsync();
        try
        {
            // Past Kestrel's default request-line limit (8 KB), which answered with an empty body, and far past it.
            foreach (var length in new[] { JsonErrors.MaxUrlLength + 1, 9_000, 60_000 })
            {
                var path = "/api/search?q=";
                var response = await http.GetAsync(path + new string('x', length - path.Length));
                Assert.Equal(HttpStatusCode.RequestUriTooLong, response.StatusCode);
                Assert.Equal(ApiProblem.ContentType, response.Content.Headers.ContentType?.MediaType);
                using var body = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                Assert.Equal($"the request URL is {length} characters long; at most {JsonErrors.MaxUrlLength} are accepted",
                    body.RootElement.GetProperty("error").GetString());
            }
            // At the limit the request reaches the API, which answers for itself (the text is over 1000 characters).
            var atLimit = await http.GetAsync("/api/search?q=" + new string('x', JsonErrors.MaxUrlLength - "/api/search?q=".Length));
            Assert.Equal(HttpStatusCode.BadRequest, atLimit.StatusCode);
            Assert.Contains("at most 1000 are allowed", await atLimit.Content.ReadAsStringAsync());
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public async Task CrossSitePostsAndRebindingHostsAreRefused()
    {
        var (app, http) = await StartAsync();
        try
        {
            // The dashboard action of the report: delete a recurring job from a foreign page.
            var remove = new HttpRequestMessage(HttpMethod.Post, "/hangfire/recurring/remove") { Content = new FormUrlEncodedContent([new("jobs[]", "index-archive")]) };
            remove.Headers.Add("Origin", "https://evil.example");
            var removed = await http.SendAsync(remove);
            Assert.Equal(HttpStatusCode.Forbidden, removed.StatusCode);
            Assert.Contains("cross-site POST from https://evil.example refused", await removed.Content.ReadAsStringAsync());

            // Same origin but no anti-forgery token (a form posted by something other than the dashboard): refused too.
            var noToken = new HttpRequestMessage(HttpMethod.Post, "/hangfire/recurring/remove") { Content = new FormUrlEncodedContent([new("jobs[]", "index-archive")]) };
            noToken.Headers.Add("Origin", http.BaseAddress!.GetLeftPart(UriPartial.Authority));
            Assert.NotEqual(HttpStatusCode.NoContent, (await http.SendAsync(noToken)).StatusCode);

            // A text/plain upload from another site (no preflight in browsers).
            var upload = new HttpRequestMessage(HttpMethod.Post, "/api/search/image") { Content = new StringContent("x", Encoding.UTF8, "text/plain") };
            upload.Headers.Add("Sec-Fetch-Site", "cross-site");
            Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(upload)).StatusCode);

            // DNS rebinding: the attacker's name resolving to 127.0.0.1.
            var rebinding = new HttpRequestMessage(HttpMethod.Get, "/api/search?q=farm") { Headers = { Host = "attacker.example" } };
            var rebound = await http.SendAsync(rebinding);
            Assert.Equal(HttpStatusCode.BadRequest, rebound.StatusCode);
            Assert.Contains("is not a name this server answers to", await rebound.Content.ReadAsStringAsync());

            // Same-origin requests keep working.
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/search?q=farm&k=1")).StatusCode);
            var local = new HttpRequestMessage(HttpMethod.Get, "/api/search?q=farm&k=1") { Headers = { Host = "localhost" } };
            Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(local)).StatusCode);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public void PublicBindingsFromAnyConfigurationSourceNeedCredentials()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Public:Url"] = "http://0.0.0.0:5098",
        }).Build();
        var urls = DashboardCredentials.ConfiguredUrls(config, "http://127.0.0.1:5080");
        Assert.Contains("http://0.0.0.0:5098", urls);
        var e = Assert.Throws<ArgumentException>(() => DashboardCredentials.RequireForPublicBindings(urls, null));
        Assert.Contains("0.0.0.0:5098", e.Message);
        DashboardCredentials.RequireForPublicBindings(urls, new DashboardCredentials("u", "p"));   // allowed with basic auth
        DashboardCredentials.RequireForPublicBindings(DashboardCredentials.ConfiguredUrls(new ConfigurationBuilder().Build(), "http://127.0.0.1:5080;http://[::1]:5081"), null);
        var viaUrls = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["urls"] = "http://+:80" }).Build();
        Assert.Throws<ArgumentException>(() => DashboardCredentials.RequireForPublicBindings(DashboardCredentials.ConfiguredUrls(viaUrls, "http://127.0.0.1:5080"), null));
    }
}

/// <summary>Small images made on the fly for upload tests.</summary>
internal static class TestImages
{
    /// <summary>A real 64 x 64 PNG written through GDAL.</summary>
    public static string Png(string path)
    {
        var image = RgbImage.Create(64, 64);
        for (var i = 0; i < image.Pixels.Length; i++) image.Pixels[i] = (byte)(i * 7 % 251);
        File.WriteAllBytes(path, PngEncoder.Encode(image));
        return path;
    }

    /// <summary>A PNG whose header declares <paramref name="width"/> x <paramref name="height"/> RGB pixels, with one row of them.</summary>
    public static byte[] PngHeaderOnly(int width, int height) => CraftedPngs.Write(width, height, 2, new byte[1 + width * 3]);
}

/// <summary>The web host's errors are JSON: unknown routes, wrong methods, a database outage, a dropped pooled connection.</summary>
public sealed class JsonErrorTests
{
    [Fact]
    public async Task OutagesAndBodilessErrorsAnswerJson()
    {
        var port = 6600 + Random.Shared.Next(300);
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();
        app.UseJsonErrors();
        var calls = 0;
        // A real connection failure: nothing listens on port 1.
        app.MapGet("/down", async () =>
        {
            await using var conn = new Npgsql.NpgsqlConnection("Host=127.0.0.1;Port=1;Username=x;Password=x;Timeout=2");
            await conn.OpenAsync();
            return Microsoft.AspNetCore.Http.Results.Ok();
        });
        // Fails once as a dropped pooled connection does after a database restart, then works.
        app.MapGet("/flaky", () => ++calls == 1
            ? throw new Npgsql.NpgsqlException("Exception while reading from stream", new IOException("connection reset"))
            : Microsoft.AspNetCore.Http.Results.Ok(new { calls }));
        app.MapGet("/bug", string () => throw new InvalidOperationException("secret internals at /srv/app"));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var down = await http.GetAsync("/down");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
            Assert.Contains("database is not reachable", await down.Content.ReadAsStringAsync());
            Assert.True(down.Headers.Contains("Retry-After"));

            var flaky = await http.GetAsync("/flaky");
            Assert.Equal(HttpStatusCode.OK, flaky.StatusCode);   // the first request after the "restart" succeeds
            Assert.Contains("\"calls\":2", await flaky.Content.ReadAsStringAsync());

            var bug = await http.GetAsync("/bug");
            Assert.Equal(HttpStatusCode.InternalServerError, bug.StatusCode);
            var bugBody = await bug.Content.ReadAsStringAsync();
            Assert.Contains("\"error\"", bugBody);
            Assert.DoesNotContain("/srv/app", bugBody);

            var missing = await http.GetAsync("/no/such/route");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Equal(ApiProblem.ContentType, missing.Content.Headers.ContentType?.MediaType);
            using (var notFound = System.Text.Json.JsonDocument.Parse(await missing.Content.ReadAsStringAsync()))
                Assert.Equal("not found", notFound.RootElement.GetProperty("error").GetString());
            var wrongMethod = await http.PostAsync("/bug", new StringContent(""));
            Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
            Assert.Contains("\"error\"", await wrongMethod.Content.ReadAsStringAsync());
        }
        finally { await app.StopAsync(); }
    }
}
