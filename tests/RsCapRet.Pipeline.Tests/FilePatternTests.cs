using RsCapRet.Pipeline;

namespace RsCapRet.Pipeline.Tests;

/// <summary>An archive scan finds `.TIF` as well as `.tif`, takes several patterns, and never a GDAL sidecar.</summary>
public sealed class FilePatternTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-pattern-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public void TheDefaultFindsTifAndTiffInAnyCase()
    {
        Directory.CreateDirectory(Path.Combine(_dir.FullName, "sub"));
        foreach (var name in new[] { "a.tif", "sub/B.TIF", "c.tiff", "d.Tiff", "e.jp2", "a.tif.aux.xml", "notes.txt" })
            File.WriteAllText(Path.Combine(_dir.FullName, name), "x");
        string[] Names(string pattern) => ArchiveScan.FilesUnder(_dir.FullName, pattern).Select(f => Path.GetRelativePath(_dir.FullName, f)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["a.tif", "c.tiff", "d.Tiff", "sub/B.TIF"], Names(FilePattern.Default));
        Assert.Equal(["a.tif", "e.jp2", "sub/B.TIF"], Names("*.jp2, *.tif"));
        Assert.Equal(["sub/B.TIF"], Names("b.*"));
    }

    [Theory]
    [InlineData("", "at least one")]
    [InlineData(" , ", "at least one")]
    [InlineData("sub/*.tif", "names a folder")]
    public void AnUnusablePatternIsNamed(string pattern, string problem) => Assert.Contains(problem, FilePattern.Problem(pattern));

    [Fact]
    public void UsablePatternsHaveNoProblem() => Assert.Null(FilePattern.Problem("*.tif,*.jp2"));
}
