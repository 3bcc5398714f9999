using System.Diagnostics;
using System.Net;
using RsCapRet.Cli;
using RsCapRet.Raster;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using Xunit.Abstractions;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Uploads (hardening round two, item 4): a tiny TIFF declaring thousands of bands is refused before any pixel is
/// decoded, whatever its file size; the decoding of an upload stops when its token is cancelled (the endpoint links it
/// to the request's abort and to a time budget).
/// </summary>
public sealed class UploadBoundsTests(TestDatabase db, ITestOutputHelper output) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-upload-");
    public void Dispose() => _dir.Delete(true);

    private async Task<string> GdalCreate(string name, int size, int bands, params string[] options)
    {
        var path = Path.Combine(_dir.FullName, name);
        var (code, _, err) = await TestProcess.RunAsync("gdal_create",
            ["-of", "GTiff", "-outsize", size.ToString(), size.ToString(), "-bands", bands.ToString(), "-ot", "Byte", .. options, path]);
        Assert.True(code == 0, $"gdal_create: {err}");
        return path;
    }

    [Fact]
    public async Task AnImageDeclaringMoreBandsThanTheLimitIsRefusedBeforeDecodingWhateverItsSize()
    {
        // The report's file: 7000 x 7000 px x 4000 Byte bands in a few KB (sparse strips), under the pixel limit.
        var bomb = await GdalCreate("bands-bomb.tif", 7000, 4000, "-co", "SPARSE_OK=TRUE", "-co", "COMPRESS=DEFLATE", "-co", "INTERLEAVE=PIXEL");
        Assert.True(new FileInfo(bomb).Length < 200_000);
        var five = await GdalCreate("five-bands.tif", 64, 5, "-burn", "9");
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            foreach (var (file, bands) in new[] { (bomb, 4000), (five, 5) })
            {
                var sw = Stopwatch.StartNew();
                var response = await http.PostAsync("/api/search/image?k=3", new ByteArrayContent(await File.ReadAllBytesAsync(file)));
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{response.StatusCode} {body}");
                Assert.Contains($"declares {bands} bands, more than the limit of 4", body);
                Assert.Contains(HostLimits.MaxUploadBandsVariable, body);
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"{Path.GetFileName(file)} took {sw.Elapsed}");
            }
            // Four bands (RGB + alpha) are read as before.
            var rgba = await GdalCreate("rgba.tif", 64, 4, "-burn", "9");
            var ok = await http.PostAsync("/api/search/image?k=3", new ByteArrayContent(await File.ReadAllBytesAsync(rgba)));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public async Task CancellationStopsTheDecodingOfAnUpload()
    {
        // 49 MP in 4 pixel-interleaved deflated bands: under every limit, and a few hundred KB.
        var big = await GdalCreate("big.tif", 7000, 4, "-burn", "7", "-co", "COMPRESS=DEFLATE", "-co", "INTERLEAVE=PIXEL", "-co", "BLOCKYSIZE=16");
        var bytes = await File.ReadAllBytesAsync(big);
        var whole = RasterImage.ReadUploadedRgb(bytes, 50_000_000, 4096, maxBands: 4, ct: new CancellationTokenSource().Token);
        Assert.Equal(4096, whole.Width);

        // Already cancelled: nothing is decoded.
        Assert.Throws<OperationCanceledException>(() => RasterImage.ReadUploadedRgb(bytes, 50_000_000, 4096, ct: new CancellationToken(true)));
        // Cancelled mid-decode (as when the client hangs up): GDAL stops at its next block.
        CancellationChecks.AssertStopsEarly("decoding an upload", ct => RasterImage.ReadUploadedRgb(bytes, 50_000_000, 4096, maxBands: 4, ct: ct), output.WriteLine);
    }
}
