using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.StaticFiles;

namespace RsCapRet.Web;

/// <summary>
/// The search page (web/index.html, its script and style, vendored Leaflet) embedded in the CLI assembly,
/// so `rscapret serve` needs no files beside the binary and no internet: GET / and GET /static/{path}.
/// </summary>
public static class MapPageAssets
{
    private const string Prefix = "web/";
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    /// <summary>Embedded files by their path under web/ ('/' separated).</summary>
    private static readonly Lazy<IReadOnlyDictionary<string, byte[]>> Files = new(() =>
    {
        var assembly = typeof(MapPageAssets).Assembly;
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames())
        {
            var path = name.Replace('\\', '/');
            if (!path.StartsWith(Prefix, StringComparison.Ordinal)) continue;
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var ms = new MemoryStream();
            stream.CopyTo(ms);
            files[path[Prefix.Length..]] = ms.ToArray();
        }
        return files;
    });

    public static IEndpointRouteBuilder MapMapPage(this IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Serve("index.html"));
        app.MapGet("/static/{**path}", (string path) => path == "index.html" ? Results.NotFound() : Serve(path));
        return app;
    }

    private static IResult Serve(string path)
    {
        if (!Files.Value.TryGetValue(path, out var bytes)) return ApiProblem.NotFound($"no file {path}");
        if (!ContentTypes.TryGetContentType(path, out var type)) type = "application/octet-stream";
        if (type.StartsWith("text/", StringComparison.Ordinal) || type.EndsWith("javascript", StringComparison.Ordinal)) type += "; charset=utf-8";
        return Results.Bytes(bytes, type);
    }
}
