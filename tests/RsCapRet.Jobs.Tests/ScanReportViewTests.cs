using RsCapRet.Jobs;

namespace RsCapRet.Jobs.Tests;

/// <summary>An archive scan's decisions as the dashboard's job page draws them.</summary>
public sealed class ScanReportViewTests
{
    [Fact]
    public void DecisionsAreListedWithTheirJobsAndFileNamesStayText()
    {
        var report = new ScanJobReport("3 files seen (1 hashed): 1 added, 0 changed, 0 removed, 1 moved, 1 unchanged, 0 failed; 1 ingest jobs queued",
        [
            new ScanJobLine("/a/<img src=x onerror=alert(1)>.tif", "added", null, null, "42"),
            new ScanJobLine("/a/b.tif", "moved", null, "/a/old.tif", null),
            new ScanJobLine("/a/c.tif", "unchanged", null, null, null),
        ], 3, 1);
        var html = ScanReportView.Html(report);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;.tif", html);
        Assert.DoesNotContain("<img", html);
        Assert.Contains("<a href=\"42\">#42</a>", html);
        Assert.Contains("from /a/old.tif; same bytes, no model work", html);
        Assert.DoesNotContain("/a/c.tif", html);   // unchanged files are counted, not listed
    }
}
