"""The pages ``segedge run --serve`` serves: plain HTML, CSS and JavaScript, nothing fetched
from elsewhere. Values from the server only ever reach a page through ``textContent`` and
SVG attributes; the title is HTML-escaped by the server before it is put in."""

# The live page: plain HTML, CSS and JavaScript, nothing fetched from elsewhere. It polls
# /stats once a second and draws with inline SVG: figures rounded, FPS and latency over the
# last minutes, and (with a drift monitor) agreement with the reference over the frames.
# Values from the server only ever reach the page through textContent and SVG attributes.
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>segedge live</title>
<style>
body{font-family:system-ui,sans-serif;background:#14161a;color:#e8e8e8;margin:16px}
h1{font-size:20px;margin:0 0 2px}.src{color:#9aa0a6;margin:0 0 12px;word-break:break-all}
.wrap{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
#view{max-width:min(100%,854px);border:1px solid #333;background:#000}
.side{flex:1;min-width:340px;max-width:560px}
.cards{display:grid;grid-template-columns:repeat(3,1fr);gap:8px;margin-bottom:12px}
.card{background:#1f2329;border-radius:6px;padding:8px 10px}.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
.card span{color:#9aa0a6;font-size:12px}
h2{font-size:14px;color:#c9cdd2;margin:12px 0 4px}svg{background:#1f2329;border-radius:6px;width:100%;height:150px}
svg text{fill:#9aa0a6;font-size:11px}.legend{font-size:12px;color:#9aa0a6}.legend i{display:inline-block;width:10px;height:3px;margin:0 4px 3px 10px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}td,th{padding:2px 10px 2px 0;text-align:right}th:first-child,td:first-child{text-align:left}
.off{color:#9aa0a6;font-size:13px}.alert{color:#ff6b6b}
</style></head><body>
<h1>segedge live</h1><p class="src" id="source">$title</p>
<div class="wrap"><img src="/stream" id="view" alt="live view">
<div class="side">
<div class="cards">
<div class="card"><b id="fps">-</b><span>FPS</span></div>
<div class="card"><b id="latency">-</b><span>latency ms (capture to drawn)</span></div>
<div class="card"><b id="infer">-</b><span>inference ms</span></div>
<div class="card"><b id="frame">-</b><span>frame</span></div>
<div class="card"><b id="agreement">-</b><span>agreement with reference</span></div>
<div class="card"><b id="worst">-</b><span>worst recent frame</span></div>
</div>
<h2>speed <span class="legend"><i style="background:#4fc3f7"></i>FPS<i style="background:#ffb74d"></i>latency ms</span></h2>
<svg id="perf" viewBox="0 0 500 150" preserveAspectRatio="none"></svg>
<h2>agreement with the reference, % of pixels, per scored frame <span class="legend"><i style="background:#81c784"></i>frame<i style="background:#e0e0e0"></i>running</span></h2>
<svg id="drift" viewBox="0 0 500 150" preserveAspectRatio="none"></svg>
<p class="off" id="drift-off">no drift monitor: start segedge run with --reference to compare with PyTorch live</p>
<table id="iou"></table>
</div></div>
<script>
const NS="http://www.w3.org/2000/svg";
function fmt(v,d){return (v===null||v===undefined||!isFinite(v))?"-":Number(v).toFixed(d)}
function set(id,text){document.getElementById(id).textContent=text}
function el(name,attrs,text){const e=document.createElementNS(NS,name);for(const k in attrs)e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;return e}
// series: [{points:[[x,y],...],color,axis:0|1}], axes: [[lo,hi,label],...] (left, optional right)
function plot(svg,series,axes,xs){
  while(svg.firstChild)svg.removeChild(svg.firstChild);
  const W=500,H=150,L=34,R=axes.length>1?34:8,T=8,B=18;
  if(!xs.length){svg.appendChild(el("text",{x:L,y:H/2},"waiting for data"));return}
  const x0=Math.min(...xs),x1=Math.max(...xs),sx=v=>L+(x1>x0?(v-x0)/(x1-x0):0.5)*(W-L-R);
  for(let g=0;g<=4;g++){const y=T+g*(H-T-B)/4;svg.appendChild(el("line",{x1:L,x2:W-R,y1:y,y2:y,stroke:"#2c323a"}))}
  axes.forEach((a,i)=>{const x=i?W-R+3:2;
    svg.appendChild(el("text",{x:x,y:T+9},fmt(a[1],a[3]||0)));svg.appendChild(el("text",{x:x,y:H-B},fmt(a[0],a[3]||0)))});
  svg.appendChild(el("text",{x:L,y:H-4},"frame "+Math.round(x0)));
  svg.appendChild(el("text",{x:W-R,y:H-4,"text-anchor":"end"},"frame "+Math.round(x1)));
  for(const s of series){const a=axes[s.axis||0],span=(a[1]-a[0])||1;
    const pts=s.points.filter(p=>p[1]!==null&&isFinite(p[1])).map(p=>sx(p[0]).toFixed(1)+","+(T+(1-(p[1]-a[0])/span)*(H-T-B)).toFixed(1)).join(" ");
    if(pts)svg.appendChild(el("polyline",{points:pts,fill:"none",stroke:s.color,"stroke-width":1.6,"vector-effect":"non-scaling-stroke","class":s.name}));
    if(s.dots&&s.points.length<=200)for(const p of pts.split(" "))if(p){const q=p.split(",");svg.appendChild(el("circle",{cx:q[0],cy:q[1],r:2.2,fill:s.color}))}}
}
function range(values,pad,floor){const v=values.filter(x=>x!==null&&isFinite(x));if(!v.length)return[0,1];
  let lo=Math.min(...v),hi=Math.max(...v);const m=Math.max((hi-lo)*pad,1e-6);lo=floor!==undefined?Math.max(floor,lo-m):lo-m;return[lo,hi+m]}
async function tick(){
  let s;try{s=await (await fetch("/stats",{cache:"no-store"})).json()}catch(e){return}
  const f=s.latest||{};
  set("fps",fmt(f.fps,1));set("latency",fmt(f.latency_ms,1));set("infer",fmt(f.infer_ms,1));set("frame",f.frame===undefined?"-":String(f.frame));
  const h=s.history||[],x=h.map(r=>r.frame);
  const fr=range(h.map(r=>r.fps),0.1,0),lr=range(h.map(r=>r.latency_ms),0.1,0);
  plot(document.getElementById("perf"),[{name:"fps",points:h.map(r=>[r.frame,r.fps]),color:"#4fc3f7",axis:0},{name:"latency",points:h.map(r=>[r.frame,r.latency_ms]),color:"#ffb74d",axis:1}],
       [[fr[0],fr[1],"FPS",0],[lr[0],lr[1],"ms",0]],x);
  const d=s.drift||[];
  document.getElementById("drift-off").style.display=d.length||s.monitor?"none":"block";
  if(!d.length&&!s.monitor)return;
  const last=d[d.length-1];
  if(last){set("agreement",fmt(last.running_pct,1)+" %");
    let w=d.slice(-(s.window||10)).reduce((a,b)=>b.agreement_pct<a.agreement_pct?b:a);set("worst","#"+w.frame+"  "+fmt(w.agreement_pct,1)+" %")}
  const ar=range(d.map(r=>r.agreement_pct),0.1);ar[1]=Math.min(100,ar[1]);
  plot(document.getElementById("drift"),[{name:"agreement",points:d.map(r=>[r.frame,r.agreement_pct]),color:"#81c784",dots:true},{name:"running",points:d.map(r=>[r.frame,r.running_pct]),color:"#e0e0e0"}],
       [[ar[0],ar[1],"%",1]],d.map(r=>r.frame));
  const table=document.getElementById("iou");while(table.firstChild)table.removeChild(table.firstChild);
  if(last&&last.iou){const head=table.insertRow();["class","IoU vs reference %"].forEach(x=>{const th=document.createElement("th");th.textContent=x;head.appendChild(th)});
    for(const k in last.iou){const r=table.insertRow();r.insertCell().textContent=k;r.insertCell().textContent=fmt(last.iou[k],2)}
    const r=table.insertRow();r.insertCell().textContent="logit error max";r.insertCell().textContent=fmt(last.logits_error_max,3)}
}
tick();setInterval(tick,1000);
</script></body></html>"""


# The page of a run over several sources: a grid with one tile per source (its MJPEG stream
# from /stream/K, FPS, latency p50/p99, inference time, batch size, frame, agreement with the
# reference, and its FPS over the last minutes), and the aggregate rate above. It polls /stats
# once a second; a source that ended says so and keeps its last figures.
GRID_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>segedge live: several sources</title>
<style>
body{font-family:system-ui,sans-serif;background:#14161a;color:#e8e8e8;margin:16px}
h1{font-size:20px;margin:0 0 2px}.src{color:#9aa0a6;margin:0 0 8px;word-break:break-all}
.total{margin:0 0 12px;font-size:15px;font-variant-numeric:tabular-nums}.total b{font-size:20px}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:14px}
.tile{background:#1f2329;border-radius:8px;padding:10px}
.tile h2{font-size:15px;margin:0 0 6px;word-break:break-all}.tile h2 small{color:#9aa0a6;font-weight:normal;margin-left:8px}
.tile h2 small.ended{color:#ffb74d}.tile img{width:100%;background:#000;border:1px solid #333;border-radius:4px}
.figs{display:grid;grid-template-columns:repeat(4,1fr);gap:6px;margin:8px 0}
.fig b{display:block;font-size:18px;font-variant-numeric:tabular-nums}.fig span{color:#9aa0a6;font-size:11px}
svg{width:100%;height:60px;background:#181b20;border-radius:4px}
</style></head><body>
<h1>segedge live</h1><p class="src">$title</p>
<p class="total"><b id="total">-</b> FPS in all, <span id="running">-</span> of <span id="count">-</span> sources running</p>
<div id="grid"></div>
<script>
const NS="http://www.w3.org/2000/svg";
const FIGS=[["fps","FPS",1],["latency","latency ms",1],["p99","p99 latency ms",1],["infer","inference ms",1],
            ["batch","batch",0],["frame","frame",0],["agreement","agreement %",1],["dropped","dropped",0]];
function fmt(v,d){return (v===null||v===undefined||!isFinite(v))?"-":Number(v).toFixed(d)}
function tile(k,name){
  const t=document.createElement("div");t.className="tile";t.id="t"+k;
  const h=document.createElement("h2");h.textContent=name;const st=document.createElement("small");h.appendChild(st);t.appendChild(h);
  const img=document.createElement("img");img.src="/stream/"+k;img.alt="source "+k;t.appendChild(img);
  const figs=document.createElement("div");figs.className="figs";
  for(const f of FIGS){const d=document.createElement("div");d.className="fig";const b=document.createElement("b");b.className=f[0];b.textContent="-";
    const s=document.createElement("span");s.textContent=f[1];d.appendChild(b);d.appendChild(s);figs.appendChild(d)}
  t.appendChild(figs);t.appendChild(document.createElementNS(NS,"svg"));
  return t}
function spark(svg,points){
  while(svg.firstChild)svg.removeChild(svg.firstChild);svg.setAttribute("viewBox","0 0 300 60");svg.setAttribute("preserveAspectRatio","none");
  const v=points.filter(p=>p[1]!==null&&isFinite(p[1]));if(v.length<2)return;
  const x0=v[0][0],x1=v[v.length-1][0],hi=Math.max(...v.map(p=>p[1]))*1.1||1;
  const pts=v.map(p=>(4+(x1>x0?(p[0]-x0)/(x1-x0):0.5)*292).toFixed(1)+","+(56-p[1]/hi*52).toFixed(1)).join(" ");
  const line=document.createElementNS(NS,"polyline");line.setAttribute("points",pts);line.setAttribute("fill","none");
  line.setAttribute("stroke","#4fc3f7");line.setAttribute("stroke-width","1.5");line.setAttribute("vector-effect","non-scaling-stroke");svg.appendChild(line);
  const label=document.createElementNS(NS,"text");label.setAttribute("x","6");label.setAttribute("y","12");label.setAttribute("fill","#9aa0a6");
  label.setAttribute("font-size","10");label.textContent="FPS, max "+fmt(hi/1.1,1);svg.appendChild(label)}
async function tick(){
  let s;try{s=await (await fetch("/stats",{cache:"no-store"})).json()}catch(e){return}
  const grid=document.getElementById("grid");let total=0,running=0;
  s.sources.forEach((c,k)=>{
    let t=document.getElementById("t"+k);if(!t){t=tile(k,c.name);grid.appendChild(t)}
    const f=c.latest||{},d=c.drift||[],last=d[d.length-1];
    const values={fps:f.fps,latency:f.latency_ms,p99:c.latency_p99_ms,infer:f.infer_ms,batch:f.batch,frame:f.frame,
                  agreement:last?last.running_pct:null,dropped:f.dropped};
    for(const x of FIGS)t.querySelector("."+x[0]).textContent=x[0]==="frame"&&f.frame!==undefined?String(f.frame):fmt(values[x[0]],x[2]);
    const st=t.querySelector("h2 small");st.textContent=c.failed?"failed":(c.ended?"ended":"running");st.className=c.ended?"ended":"";
    spark(t.querySelector("svg"),(c.history||[]).map(r=>[r.t,r.fps]));
    if(!c.ended){running++;if(isFinite(f.fps))total+=f.fps}});
  document.getElementById("total").textContent=fmt(total,1);
  document.getElementById("running").textContent=String(running);document.getElementById("count").textContent=String(s.sources.length);
}
tick();setInterval(tick,1000);
</script></body></html>"""
