import './base.css';
// the analysis panel's rules, also inlined in its HTML: here they style it in untrusted
// notebooks too (JupyterLab strips <style> from untrusted outputs)
import '../alchemist_magics/notebook/panel.css';
